//! The contract's STOMP destinations (docs/protocol.md), parsed once into what
//! they mean, so the connection matches on meaning rather than on string prefixes.

use crate::model::RoomId;
use crate::service::ChatError;

/// SEND here to post a chat message (`{"roomId","message"}`).
pub const CHAT: &str = "/pub/chat";
/// SEND here a fresh token (the body) to extend the session to its `exp`.
pub const TOKEN: &str = "/pub/token";
/// Live number of connected sessions (body: the number as text).
pub const ENTRY: &str = "/sub/channel/entry";
/// This session's application errors, in the envelope.
pub const ERROR_QUEUE: &str = "/user/queue/errors";

const CHANNEL_PREFIX: &str = "/sub/channel/";
const PRESENCE_PREFIX: &str = "/sub/presence/";
const HISTORY_PREFIX: &str = "/pub/history/";

/// `/sub/channel/{room}`: the room's chat messages.
pub fn channel(room: &RoomId) -> String {
    format!("{CHANNEL_PREFIX}{room}")
}

/// `/sub/presence/{room}`: the room's live count, `{"roomId","count"}`.
pub fn presence(room: &RoomId) -> String {
    format!("{PRESENCE_PREFIX}{room}")
}

/// `/pub/history/{room}`: the subscribe-time history reply.
pub fn history(room: &RoomId) -> String {
    format!("{HISTORY_PREFIX}{room}")
}

/// What a SUBSCRIBE destination means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeTarget {
    /// `/sub/channel/{room}`.
    Channel(RoomId),
    /// `/sub/channel/entry`.
    Entry,
    /// `/sub/presence/{room}`.
    Presence(RoomId),
    /// `/user/queue/errors`.
    ErrorQueue,
    /// `/pub/history/{room}`: one reply, then nothing.
    History(RoomId),
}

/// What a SEND destination means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// `/pub/chat`.
    Chat,
    /// `/pub/token`: the session's token refreshed.
    Token,
}

impl SubscribeTarget {
    /// Parses a SUBSCRIBE destination: [`ChatError::InvalidRoomId`] for a malformed room id,
    /// [`ChatError::UnknownDestination`] for anything the contract does not name.
    pub fn parse(destination: &str) -> Result<SubscribeTarget, ChatError> {
        let room = |id: &str| RoomId::parse(id).ok_or(ChatError::InvalidRoomId);
        if destination == ENTRY {
            Ok(SubscribeTarget::Entry)
        } else if destination == ERROR_QUEUE {
            Ok(SubscribeTarget::ErrorQueue)
        } else if let Some(id) = destination.strip_prefix(CHANNEL_PREFIX) {
            room(id).map(SubscribeTarget::Channel)
        } else if let Some(id) = destination.strip_prefix(PRESENCE_PREFIX) {
            room(id).map(SubscribeTarget::Presence)
        } else if let Some(id) = destination.strip_prefix(HISTORY_PREFIX) {
            room(id).map(SubscribeTarget::History)
        } else {
            Err(ChatError::UnknownDestination(destination.to_owned()))
        }
    }
}

impl SendTarget {
    /// Parses a SEND destination. Broadcast and per-user destinations are the server's alone:
    /// a client sending there would forge messages (the original's broker allowed it), so
    /// they are [`ChatError::ForbiddenDestination`].
    pub fn parse(destination: &str) -> Result<SendTarget, ChatError> {
        if destination == CHAT {
            Ok(SendTarget::Chat)
        } else if destination == TOKEN {
            Ok(SendTarget::Token)
        } else if destination.starts_with("/sub/") || destination.starts_with("/user/") {
            Err(ChatError::ForbiddenDestination(destination.to_owned()))
        } else {
            Err(ChatError::UnknownDestination(destination.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).expect("test room id")
    }

    #[test]
    fn subscribe_destinations() {
        use SubscribeTarget::*;
        assert_eq!(
            SubscribeTarget::parse("/sub/channel/lobby"),
            Ok(Channel(room("lobby")))
        );
        assert_eq!(SubscribeTarget::parse("/sub/channel/entry"), Ok(Entry));
        assert_eq!(
            SubscribeTarget::parse("/sub/presence/a-1"),
            Ok(Presence(room("a-1")))
        );
        assert_eq!(SubscribeTarget::parse("/user/queue/errors"), Ok(ErrorQueue));
        assert_eq!(
            SubscribeTarget::parse("/pub/history/lobby"),
            Ok(History(room("lobby")))
        );
        assert_eq!(
            SubscribeTarget::parse("/sub/channel/"),
            Err(ChatError::InvalidRoomId)
        );
        assert_eq!(
            SubscribeTarget::parse("/sub/channel/a/b"),
            Err(ChatError::InvalidRoomId)
        );
        assert!(matches!(
            SubscribeTarget::parse("/topic/x"),
            Err(ChatError::UnknownDestination(_))
        ));
    }

    #[test]
    fn send_destinations() {
        assert_eq!(SendTarget::parse("/pub/chat"), Ok(SendTarget::Chat));
        assert_eq!(SendTarget::parse("/pub/token"), Ok(SendTarget::Token));
        for forged in [
            "/sub/channel/lobby",
            "/sub/channel/entry",
            "/user/queue/errors",
        ] {
            assert!(matches!(
                SendTarget::parse(forged),
                Err(ChatError::ForbiddenDestination(_))
            ));
        }
        assert!(matches!(
            SendTarget::parse("/pub/other"),
            Err(ChatError::UnknownDestination(_))
        ));
    }

    #[test]
    fn destination_builders_round_trip() {
        let lobby = room("lobby");
        assert_eq!(
            SubscribeTarget::parse(&channel(&lobby)),
            Ok(SubscribeTarget::Channel(lobby.clone()))
        );
        assert_eq!(
            SubscribeTarget::parse(&presence(&lobby)),
            Ok(SubscribeTarget::Presence(lobby.clone()))
        );
        assert_eq!(
            SubscribeTarget::parse(&history(&lobby)),
            Ok(SubscribeTarget::History(lobby))
        );
    }
}
