//! Open transactions and the frames they hold until COMMIT.

use crate::frame::Headers;
use bytes::Bytes;

/// A frame accepted into a transaction, already validated, waiting for COMMIT.
#[derive(Debug)]
pub(super) enum Held {
    Send {
        destination: String,
        headers: Headers,
        body: Bytes,
    },
    /// An ACK (or NACK) of the delivery with this ack id; resolved at COMMIT, so an ABORT
    /// leaves the message pending.
    Ack { ack_id: u64, nack: bool },
}

#[derive(Debug)]
struct Transaction {
    id: String,
    held: Vec<Held>,
}

/// Open transactions, oldest first.
#[derive(Debug, Default)]
pub(super) struct Transactions {
    open: Vec<Transaction>,
}

/// Why a transaction operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TransactionError {
    Duplicate,
    Unknown,
    TooMany,
    TooLarge,
}

impl Transactions {
    pub(super) fn begin(&mut self, id: &str, max_open: usize) -> Result<(), TransactionError> {
        if self.open.iter().any(|t| t.id == id) {
            return Err(TransactionError::Duplicate);
        }
        if self.open.len() >= max_open {
            return Err(TransactionError::TooMany);
        }
        self.open.push(Transaction {
            id: id.to_owned(),
            held: Vec::new(),
        });
        Ok(())
    }

    pub(super) fn hold(
        &mut self,
        id: &str,
        frame: Held,
        max_frames: usize,
    ) -> Result<(), TransactionError> {
        let transaction = self
            .open
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or(TransactionError::Unknown)?;
        if transaction.held.len() >= max_frames {
            return Err(TransactionError::TooLarge);
        }
        transaction.held.push(frame);
        Ok(())
    }

    /// Ends the transaction and returns what it held, in order (COMMIT releases them, ABORT
    /// drops them).
    pub(super) fn end(&mut self, id: &str) -> Result<Vec<Held>, TransactionError> {
        let index = self
            .open
            .iter()
            .position(|t| t.id == id)
            .ok_or(TransactionError::Unknown)?;
        Ok(self.open.remove(index).held)
    }
}
