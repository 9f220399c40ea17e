//! How messages are shown: `name #tag: text` lines, or the message JSON (`--json`).

use rtchat_stomp::Frame;
use serde_json::Value;

/// The message a MESSAGE frame of a room subscription carries, if it is one.
pub fn chat_message(frame: &Frame) -> Option<Value> {
    let destination = frame.get("destination")?;
    destination.strip_prefix("/sub/channel/")?;
    serde_json::from_slice(&frame.body).ok()
}

/// One line for `message`.
pub fn line(message: &Value, json: bool) -> String {
    if json {
        return message.to_string();
    }
    let field = |name: &str| message[name].as_str().unwrap_or("?").to_owned();
    format!(
        "{} {}: {}",
        field("randId"),
        field("nameTag"),
        field("message")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtchat_stomp::Command;

    #[test]
    fn room_messages_become_lines_and_others_are_skipped() {
        let frame = Frame::new(Command::Message)
            .header("destination", "/sub/channel/lobby")
            .body(r##"{"randId":"Ada","nameTag":"#A11CE0","message":"hi: there","seq":3}"##);
        let message = chat_message(&frame).expect("a chat message");
        assert_eq!(line(&message, false), "Ada #A11CE0: hi: there");
        let json: Value = serde_json::from_str(&line(&message, true)).expect("JSON");
        assert_eq!(json["seq"], 3);
        let other = Frame::new(Command::Message)
            .header("destination", "/user/queue/errors")
            .body("{}");
        assert!(chat_message(&other).is_none());
        let broken = Frame::new(Command::Message)
            .header("destination", "/sub/channel/lobby")
            .body("not json");
        assert!(chat_message(&broken).is_none());
    }
}
