//! The byte stream STOMP runs on, over either transport, and the STOMP client on top:
//! CONNECT, frames out, frames in (heart-beats skipped).

use crate::error::CliError;
pub use rtchat_client::Link;
use rtchat_stomp::{Command, Frame, Item, Limits, Parser, Version, encode_to_bytes};
use std::time::Duration;

/// A STOMP 1.2 session over a [`Link`].
pub struct Stomp {
    link: Link,
    parser: Parser,
    /// How long to wait for CONNECTED and receipts.
    timeout: Duration,
}

impl Stomp {
    /// Sends CONNECT with `token` and waits for CONNECTED.
    pub async fn connect(link: Link, token: &str, timeout: Duration) -> Result<Stomp, CliError> {
        let mut stomp = Stomp {
            link,
            parser: Parser::new(Limits::default()),
            timeout,
        };
        stomp
            .send(
                Frame::new(Command::Connect)
                    .header("accept-version", "1.2")
                    .header("host", "rtchat")
                    .header("heart-beat", "0,0")
                    .header("Authorization", format!("Bearer {token}")),
            )
            .await?;
        let frame = stomp.expect_frame("CONNECTED").await?;
        match frame.command {
            Command::Connected => Ok(stomp),
            _ => Err(unexpected(&frame)),
        }
    }

    /// The transport's name.
    pub fn transport(&self) -> &'static str {
        self.link.name()
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) -> Result<(), CliError> {
        Ok(self
            .link
            .send(encode_to_bytes(&frame, Version::V1_2))
            .await?)
    }

    /// The next frame; `None` once the server closed. An ERROR frame is returned as
    /// [`CliError::Stomp`]. Cancel-safe: bytes already read stay in the parser.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, CliError> {
        loop {
            match self.parser.next_item() {
                Ok(Some(Item::Frame(frame))) if frame.command == Command::Error => {
                    return Err(CliError::Stomp(
                        frame.get("message").unwrap_or("(no message)").to_owned(),
                    ));
                }
                Ok(Some(Item::Frame(frame))) => return Ok(Some(frame)),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(error) => return Err(CliError::Protocol(error.to_string())),
            }
            match self.link.recv().await? {
                Some(bytes) => self.parser.feed(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The next frame within the timeout; the server closing is an error naming `what`.
    pub async fn expect_frame(&mut self, what: &'static str) -> Result<Frame, CliError> {
        tokio::time::timeout(self.timeout, self.next_frame())
            .await
            .map_err(|_| CliError::Timeout(self.timeout, what))??
            .ok_or(CliError::Closed(what))
    }

    /// Sends `frame` with `receipt:id` and waits for that RECEIPT; frames before it go to
    /// `other`.
    pub async fn request(
        &mut self,
        frame: Frame,
        id: &str,
        what: &'static str,
        mut other: impl FnMut(Frame),
    ) -> Result<(), CliError> {
        self.send(frame.header("receipt", id)).await?;
        loop {
            let frame = self.expect_frame(what).await?;
            if frame.command == Command::Receipt && frame.get("receipt-id") == Some(id) {
                return Ok(());
            }
            other(frame);
        }
    }

    /// DISCONNECTs (waiting for its receipt; frames before it go to `other`) and closes.
    pub async fn disconnect(mut self, other: impl FnMut(Frame)) -> Result<(), CliError> {
        let result = self
            .request(
                Frame::new(Command::Disconnect),
                "bye",
                "the DISCONNECT receipt",
                other,
            )
            .await;
        self.link.close(self.timeout).await;
        result
    }
}

fn unexpected(frame: &Frame) -> CliError {
    CliError::Protocol(format!("expected CONNECTED, got {}", frame.command))
}
