//! What each client frame does once the session is connected, and what CONNECT does before.

use super::config::{HeartBeat, SessionConfig};
use super::errors::ProtocolError;
use super::events::{AckMode, CloseReason, ConnectRequest, Event, ReceiptId};
use super::subscriptions::{Acknowledged, Subscriptions};
use super::timers::Negotiated;
use super::transactions::{Held, Transactions};
use super::{Authenticating, Output, Phase, Session};
use crate::frame::{Command, Frame, Version};

/// What only a connected session has: the negotiated version and heart-beats, and the
/// subscriptions and transactions the client opened.
#[derive(Debug)]
pub(super) struct Connected {
    pub(super) version: Version,
    pub(super) heart_beat: Negotiated,
    pub(super) subscriptions: Subscriptions,
    pub(super) transactions: Transactions,
    /// A deferred DISCONNECT waits for [`Session::disconnect`], with its receipt.
    pub(super) disconnecting: Option<Option<ReceiptId>>,
}

/// What a frame asks of the session beyond its events.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Read on.
    Continue,
    /// The frame ends the session.
    Close(CloseReason),
}

impl Session {
    /// A CONNECT or STOMP on a session awaiting one: negotiates the version and hands the
    /// request to the application.
    pub(super) fn on_connect(
        &mut self,
        frame: Frame,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), ProtocolError> {
        // No accept-version means a 1.0 client.
        let offered = frame.get("accept-version").unwrap_or("1.0");
        let version = offered
            .split(',')
            .filter_map(Version::from_header)
            .filter(|v| self.config.versions.contains(v))
            .max()
            .ok_or_else(|| ProtocolError::UnsupportedVersion {
                supported: self.supported_versions(),
            })?;
        self.parser.set_version(version);
        // The version is agreed from here on, even if the rest of the CONNECT is refused: its
        // ERROR is written by that version's rules.
        self.phase = Phase::Authenticating(Authenticating {
            version,
            client_heart_beat: HeartBeat::OFF,
            deadline,
            fed: 0,
        });
        let client_heart_beat = match (version, frame.get("heart-beat")) {
            // Heart-beats arrived with 1.1.
            (Version::V1_0, _) | (_, None) => HeartBeat::OFF,
            (_, Some(value)) => {
                HeartBeat::parse(value).ok_or(ProtocolError::InvalidHeader("heart-beat"))?
            }
        };
        if let Phase::Authenticating(authenticating) = &mut self.phase {
            authenticating.client_heart_beat = client_heart_beat;
        }
        let header = |name: &str| frame.get(name).map(str::to_owned);
        let request = ConnectRequest {
            version,
            host: header("host"),
            login: header("login"),
            passcode: header("passcode"),
            headers: frame.headers,
        };
        self.out.events.push_back(Event::Connect(request));
        Ok(())
    }

    fn supported_versions(&self) -> String {
        let mut versions = self.config.versions.clone();
        versions.sort();
        versions.dedup();
        versions
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Connected {
    /// A client frame other than CONNECT, STOMP and the server's frames.
    pub(super) fn on_frame(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Result<Flow, ProtocolError> {
        match frame.command {
            Command::Send => self.on_send(frame, receipt, config, out),
            Command::Subscribe => self.on_subscribe(frame, receipt, config, out),
            Command::Unsubscribe => self.on_unsubscribe(frame, receipt, out),
            Command::Ack => self.on_ack(frame, false, receipt, config, out),
            Command::Nack => self.on_ack(frame, true, receipt, config, out),
            Command::Begin => self.on_begin(frame, receipt, config, out),
            Command::Commit => self.on_commit(frame, receipt, out),
            Command::Abort => self.on_abort(frame, receipt, out),
            Command::Disconnect => return Ok(self.on_disconnect(receipt, config, out)),
            Command::Connect | Command::Stomp => Err(ProtocolError::AlreadyConnected),
            command @ (Command::Connected
            | Command::Message
            | Command::Receipt
            | Command::Error) => Err(ProtocolError::UnexpectedCommand {
                command: command.as_str(),
            }),
        }
        .map(|()| Flow::Continue)
    }

    fn on_send(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let destination = required(&frame, "destination")?.to_owned();
        let transaction = frame.get("transaction").map(str::to_owned);
        let Frame { headers, body, .. } = frame;
        match transaction {
            Some(transaction) => self.hold(
                &transaction,
                Held::Send {
                    destination,
                    headers,
                    body,
                },
                receipt,
                config,
                out,
            ),
            None => {
                out.events.push_back(Event::Send {
                    destination,
                    headers,
                    body,
                    receipt,
                });
                Ok(())
            }
        }
    }

    fn on_subscribe(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let destination = required(&frame, "destination")?.to_owned();
        let id = match (frame.get("id"), self.version) {
            (Some(id), _) => id.to_owned(),
            // 1.0 made `id` optional; the destination names the subscription then.
            (None, Version::V1_0) => destination.clone(),
            (None, _) => return Err(ProtocolError::MissingHeader("id")),
        };
        let ack = match (frame.get("ack"), self.version) {
            (None | Some("auto"), _) => AckMode::Auto,
            (Some("client"), _) => AckMode::Client,
            (Some("client-individual"), Version::V1_1 | Version::V1_2) => AckMode::ClientIndividual,
            (Some(_), _) => return Err(ProtocolError::InvalidHeader("ack")),
        };
        if self.subscriptions.get(&id).is_some() {
            return Err(ProtocolError::DuplicateSubscription(id));
        }
        if self.subscriptions.len() >= config.max_subscriptions {
            return Err(ProtocolError::TooManySubscriptions);
        }
        // Held from now on, awaiting the application's answer: its id is taken and it counts
        // against the limit while the frames after it are read.
        let key = self
            .subscriptions
            .insert(id.clone(), destination.clone(), ack);
        out.events.push_back(Event::Subscribe {
            key,
            id,
            destination,
            ack,
            headers: frame.headers,
            receipt,
        });
        Ok(())
    }

    fn on_unsubscribe(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let id = match (frame.get("id"), self.version) {
            (Some(id), _) => id.to_owned(),
            // 1.0 may unsubscribe by destination.
            (None, Version::V1_0) => {
                let destination = frame
                    .get("destination")
                    .ok_or(ProtocolError::MissingHeader("id"))?;
                self.subscriptions
                    .id_for_destination(destination)
                    .unwrap_or(destination)
                    .to_owned()
            }
            (None, _) => return Err(ProtocolError::MissingHeader("id")),
        };
        let subscription = self
            .subscriptions
            .remove(&id)
            .ok_or(ProtocolError::UnknownSubscription(id))?;
        out.ended.push(subscription.key);
        out.events.push_back(Event::Unsubscribe {
            key: subscription.key,
            id: subscription.id,
            destination: subscription.destination,
            receipt,
        });
        Ok(())
    }

    fn on_ack(
        &mut self,
        frame: Frame,
        nack: bool,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let ack_id = self.ack_id_of(&frame)?;
        match frame.get("transaction") {
            Some(transaction) => self.hold(
                transaction,
                Held::Ack { ack_id, nack },
                receipt,
                config,
                out,
            ),
            None => {
                self.settle(ack_id, nack, receipt, out);
                Ok(())
            }
        }
    }

    /// The pending delivery an ACK or NACK names, by each version's rules.
    fn ack_id_of(&self, frame: &Frame) -> Result<u64, ProtocolError> {
        match self.version {
            Version::V1_2 => {
                let id = required(frame, "id")?;
                id.parse::<u64>()
                    .ok()
                    .filter(|&ack_id| self.subscriptions.is_pending(ack_id))
                    .ok_or_else(|| ProtocolError::UnknownAck(id.to_owned()))
            }
            version => {
                let message_id = required(frame, "message-id")?;
                let subscription = match (frame.get("subscription"), version) {
                    (Some(subscription), _) => {
                        if self.subscriptions.get(subscription).is_none() {
                            return Err(ProtocolError::UnknownSubscription(
                                subscription.to_owned(),
                            ));
                        }
                        Some(subscription)
                    }
                    (None, Version::V1_1) => {
                        return Err(ProtocolError::MissingHeader("subscription"));
                    }
                    (None, _) => None,
                };
                self.subscriptions
                    .ack_id_for_message(subscription, message_id)
                    .ok_or_else(|| ProtocolError::UnknownAck(message_id.to_owned()))
            }
        }
    }

    /// Applies an ACK or NACK. A delivery settled meanwhile (by a cumulative ACK, or an
    /// UNSUBSCRIBE, between a transactional ACK and its COMMIT) is skipped: acknowledging
    /// twice is harmless.
    fn settle(&mut self, ack_id: u64, nack: bool, receipt: Option<ReceiptId>, out: &mut Output) {
        let Some(Acknowledged {
            subscription,
            message_ids,
        }) = self.subscriptions.settle(ack_id)
        else {
            if let Some(receipt) = receipt {
                out.receipt(receipt, self.version);
            }
            return;
        };
        out.events.push_back(if nack {
            Event::Nack {
                subscription,
                message_ids,
                receipt,
            }
        } else {
            Event::Ack {
                subscription,
                message_ids,
                receipt,
            }
        });
    }

    fn on_begin(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let transaction = required(&frame, "transaction")?;
        self.transactions
            .begin(transaction, config.max_transactions)
            .map_err(|error| ProtocolError::of_transaction(error, transaction))?;
        if let Some(receipt) = receipt {
            out.receipt(receipt, self.version);
        }
        Ok(())
    }

    fn on_commit(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let transaction = required(&frame, "transaction")?;
        let held = self
            .transactions
            .end(transaction)
            .map_err(|error| ProtocolError::of_transaction(error, transaction))?;
        for frame in held {
            match frame {
                Held::Send {
                    destination,
                    headers,
                    body,
                } => out.events.push_back(Event::Send {
                    destination,
                    headers,
                    body,
                    // Receipted when it joined the transaction.
                    receipt: None,
                }),
                Held::Ack { ack_id, nack } => self.settle(ack_id, nack, None, out),
            }
        }
        out.events.push_back(Event::Commit {
            transaction: transaction.to_owned(),
            receipt,
        });
        Ok(())
    }

    fn on_abort(
        &mut self,
        frame: Frame,
        receipt: Option<ReceiptId>,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        let transaction = required(&frame, "transaction")?;
        self.transactions
            .end(transaction)
            .map_err(|error| ProtocolError::of_transaction(error, transaction))?;
        if let Some(receipt) = receipt {
            out.receipt(receipt, self.version);
        }
        Ok(())
    }

    fn on_disconnect(
        &mut self,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Flow {
        if config.defer_disconnect {
            self.disconnecting = Some(receipt.clone());
            out.events.push_back(Event::Disconnect { receipt });
            return Flow::Continue;
        }
        if let Some(receipt) = receipt {
            out.receipt(receipt, self.version);
        }
        Flow::Close(CloseReason::Disconnect)
    }

    /// Accepts a frame into an open transaction; its receipt is owed now, so it is sent now.
    fn hold(
        &mut self,
        transaction: &str,
        frame: Held,
        receipt: Option<ReceiptId>,
        config: &SessionConfig,
        out: &mut Output,
    ) -> Result<(), ProtocolError> {
        self.transactions
            .hold(transaction, frame, config.max_frames_per_transaction)
            .map_err(|error| ProtocolError::of_transaction(error, transaction))?;
        if let Some(receipt) = receipt {
            out.receipt(receipt, self.version);
        }
        Ok(())
    }
}

/// The first value of a header the frame cannot do without.
fn required<'a>(frame: &'a Frame, name: &'static str) -> Result<&'a str, ProtocolError> {
    frame.get(name).ok_or(ProtocolError::MissingHeader(name))
}
