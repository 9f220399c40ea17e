//! Rooms for two. A private room's id names its two members and carries a keyed MAC of them:
//! `private-AAAAAA-BBBBBB-<16 hex digits>` for the tags `#AAAAAA` < `#BBBBBB`. The MAC (HMAC-SHA256
//! under a server secret, shared by every node) means nobody can compute the id from the two
//! public tags, and the members can be read from the id itself, so every node can check
//! membership with no store and no lookup: only the two members may subscribe to the room,
//! send into it or read its history.

use crate::identity::is_valid_name_tag;
use crate::model::{Identity, PRIVATE_ROOM_PREFIX, RoomId};
use crate::service::{BadRequest, ChatError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hex digits of the MAC kept in the id: 64 bits, far beyond guessing through the API.
const MAC_HEX: usize = 16;

/// The key private room ids are made with. Every node of a deployment must have the same.
#[derive(Clone)]
pub struct PrivateRoomKey([u8; 32]);

impl PrivateRoomKey {
    /// A key from 32 secret bytes (the app derives them from its JWT secret).
    pub fn new(key: [u8; 32]) -> Self {
        PrivateRoomKey(key)
    }

    /// The id of the room of `a` and `b` (name tags, in either order).
    ///
    /// Errors: [`ChatError::BadRequest`] when either is not a name tag (`#` and 6 upper-case
    /// hex digits), or both are the same.
    pub fn room_id(&self, a: &str, b: &str) -> Result<RoomId, ChatError> {
        for (field, tag) in [("senderId", a), ("receiverId", b)] {
            if !is_valid_name_tag(tag) {
                return Err(ChatError::BadRequest(BadRequest::NotANameTag(field)));
            }
        }
        if a == b {
            return Err(ChatError::BadRequest(BadRequest::SamePerson));
        }
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        let (first, second) = (&first[1..], &second[1..]);
        let mac = self.mac(first, second);
        RoomId::parse(&format!("{PRIVATE_ROOM_PREFIX}{first}-{second}-{mac}"))
            .ok_or(ChatError::InvalidRoomId)
    }

    /// Whether `who` may use `room`: any public room; a private room only when its id was made
    /// with this key and `who` is one of its two members.
    pub fn may_enter(&self, room: &RoomId, who: &Identity) -> bool {
        if !room.is_private() {
            return true;
        }
        let Some((first, second, mac)) = split(room) else {
            return false;
        };
        let tag = who.name_tag.strip_prefix('#').unwrap_or_default();
        // Not a secret comparison worth timing: the id is not secret from its members, and a
        // non-member learns nothing from how fast a refusal comes.
        self.mac(first, second) == mac && (tag == first || tag == second)
    }

    fn mac(&self, first: &str, second: &str) -> String {
        // HMAC takes keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(first.as_bytes());
        mac.update(b"|");
        mac.update(second.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .take(MAC_HEX / 2)
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for PrivateRoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key would let anyone make room ids.
        f.write_str("PrivateRoomKey(..)")
    }
}

impl Default for PrivateRoomKey {
    /// An all-zero key, for tests only: an app always sets its own.
    fn default() -> Self {
        PrivateRoomKey([0; 32])
    }
}

/// `private-AAAAAA-BBBBBB-mac` into its parts.
fn split(room: &RoomId) -> Option<(&str, &str, &str)> {
    let rest = room.as_str().strip_prefix(PRIVATE_ROOM_PREFIX)?;
    let mut parts = rest.split('-');
    let (first, second, mac) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && first.len() == 6 && second.len() == 6 && mac.len() == MAC_HEX)
        .then_some((first, second, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(tag: &str) -> Identity {
        Identity {
            rand_id: "Wren1".to_owned(),
            name_tag: tag.to_owned(),
        }
    }

    #[test]
    fn the_same_pair_in_either_order_gets_the_same_room_and_only_they_enter() {
        let key = PrivateRoomKey::new([7; 32]);
        let room = key.room_id("#AAAAAA", "#BBBBBB").expect("room");
        assert_eq!(key.room_id("#BBBBBB", "#AAAAAA").expect("room"), room);
        assert!(room.is_private());
        assert!(room.as_str().starts_with("private-AAAAAA-BBBBBB-"));
        assert!(key.may_enter(&room, &who("#AAAAAA")));
        assert!(key.may_enter(&room, &who("#BBBBBB")));
        assert!(!key.may_enter(&room, &who("#CCCCCC")));
    }

    #[test]
    fn another_key_makes_another_id_and_refuses_this_one() {
        let room = PrivateRoomKey::new([7; 32])
            .room_id("#AAAAAA", "#BBBBBB")
            .expect("room");
        let other = PrivateRoomKey::new([8; 32]);
        assert_ne!(other.room_id("#AAAAAA", "#BBBBBB").expect("room"), room);
        assert!(!other.may_enter(&room, &who("#AAAAAA")));
    }

    #[test]
    fn a_forged_id_naming_yourself_is_refused() {
        let key = PrivateRoomKey::new([7; 32]);
        let forged = RoomId::parse("private-AAAAAA-CCCCCC-0123456789abcdef").expect("id");
        assert!(!key.may_enter(&forged, &who("#CCCCCC")));
        let malformed = RoomId::parse("private-0123456789abcdef").expect("id");
        assert!(!key.may_enter(&malformed, &who("#AAAAAA")));
    }

    #[test]
    fn public_rooms_are_open_to_all() {
        let key = PrivateRoomKey::default();
        assert!(key.may_enter(&RoomId::parse("lobby").expect("id"), &who("#CCCCCC")));
    }

    #[test]
    fn only_two_different_name_tags_make_a_room() {
        let key = PrivateRoomKey::default();
        assert!(key.room_id("alice", "#BBBBBB").is_err());
        assert!(key.room_id("#AAAAAA", "#aaaaaa").is_err());
        assert!(key.room_id("#AAAAAA", "#AAAAAA").is_err());
    }
}
