//! Checks on what users type: message text and room names (the two ids of a private room are
//! name tags, checked by [`crate::PrivateRoomKey::room_id`]).
//! Each returns the cleaned value, so callers cannot forget to use it.

use crate::service::{BadRequest, ChatError};

/// Longest room name, in characters, after trimming.
pub const MAX_ROOM_NAME_CHARS: usize = 100;

/// The message as it will be stored: trimmed, non-empty, at most `max_chars` characters
/// (characters, not bytes: a limit in bytes would punish every non-Latin script).
pub fn message_text(text: &str, max_chars: usize) -> Result<&str, ChatError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ChatError::EmptyMessage);
    }
    // `nth` stops counting at the limit, so a huge message costs no more than a legal one.
    if text.chars().nth(max_chars).is_some() {
        return Err(ChatError::MessageTooLong { max: max_chars });
    }
    Ok(text)
}

/// A room name: trimmed, 1 to 100 characters.
pub fn room_name(name: &str) -> Result<&str, ChatError> {
    let name = name.trim();
    let chars = name.chars().take(MAX_ROOM_NAME_CHARS + 1).count();
    if chars == 0 || chars > MAX_ROOM_NAME_CHARS {
        return Err(ChatError::BadRequest(BadRequest::RoomName {
            max: MAX_ROOM_NAME_CHARS,
        }));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_trimmed() {
        assert_eq!(message_text("  hello \n", 10), Ok("hello"));
    }

    #[test]
    fn empty_or_blank_message_is_refused() {
        assert_eq!(message_text("", 10), Err(ChatError::EmptyMessage));
        assert_eq!(message_text(" \t\r\n ", 10), Err(ChatError::EmptyMessage));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let korean = "안".repeat(10); // 30 bytes, 10 characters
        assert_eq!(message_text(&korean, 10), Ok(korean.as_str()));
        assert_eq!(
            message_text(&"안".repeat(11), 10),
            Err(ChatError::MessageTooLong { max: 10 })
        );
        assert_eq!(message_text(&"a".repeat(10), 10).map(str::len), Ok(10));
        // Surrounding blanks do not count.
        assert!(message_text(&format!("  {}  ", "a".repeat(10)), 10).is_ok());
    }

    #[test]
    fn room_names_are_bounded() {
        assert_eq!(room_name("  Garden "), Ok("Garden"));
        assert!(room_name("   ").is_err());
        assert!(room_name(&"n".repeat(100)).is_ok());
        assert!(matches!(
            room_name(&"n".repeat(101)),
            Err(ChatError::BadRequest(_))
        ));
    }
}
