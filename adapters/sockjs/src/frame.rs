//! SockJS 0.3 framing, with no I/O: what the server writes (`o`, `h`, `a[...]`, `c[...]`),
//! how the transports wrap it, what the client sends (JSON arrays of strings), and which
//! server and session ids are valid. The handlers only move these strings around.

use std::fmt::Write as _;

/// The answer to `GET <prefix>` and `GET <prefix>/`.
pub const GREETING: &str = "Welcome to SockJS!\n";

/// The open frame, sent first on every new session.
pub const OPEN: &str = "o";

/// The heartbeat frame.
pub const HEARTBEAT: &str = "h";

/// Bytes of `h` an xhr-streaming answer starts with (then a newline): some browsers show
/// nothing of a streamed answer before its first 2 KiB.
pub const XHR_STREAMING_PRELUDE_BYTES: usize = 2048;

/// Longest server or session id accepted: ids are client-chosen, and each session is kept
/// under its id, so a bound keeps a hostile client from storing long keys.
pub const MAX_ID_CHARS: usize = 128;

/// Why a session's client is told it is closed (`c[code,"reason"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The server closed the session (the STOMP connection ended): `3000 "Go away!"`.
    GoAway,
    /// A second receiving request while one is open: `2010 "Another connection still open"`.
    AnotherConnectionOpen,
    /// A receiving request was cut off by the network: `1002 "Connection interrupted"`.
    Interrupted,
}

impl CloseCode {
    /// The code and reason the frame carries.
    pub fn code_and_reason(self) -> (u16, &'static str) {
        match self {
            CloseCode::GoAway => (3000, "Go away!"),
            CloseCode::AnotherConnectionOpen => (2010, "Another connection still open"),
            CloseCode::Interrupted => (1002, "Connection interrupted"),
        }
    }

    /// The close frame, e.g. `c[3000,"Go away!"]`.
    pub fn frame(self) -> String {
        let (code, reason) = self.code_and_reason();
        let mut frame = format!("c[{code},");
        push_json_string(&mut frame, reason);
        frame.push(']');
        frame
    }
}

/// An array frame carrying `messages`: `a["m1","m2"]`.
pub fn messages<S: AsRef<str>>(messages: &[S]) -> String {
    let capacity = 3 + messages
        .iter()
        .map(|message| message.as_ref().len() + 3)
        .sum::<usize>();
    let mut frame = String::with_capacity(capacity);
    frame.push_str("a[");
    for (index, message) in messages.iter().enumerate() {
        if index > 0 {
            frame.push(',');
        }
        push_json_string(&mut frame, message.as_ref());
    }
    frame.push(']');
    frame
}

/// Whether the server must send `c` as `\uXXXX`: JSON's control characters, and the ones
/// SockJS lists because browsers or proxies mangle them (C1 controls, zero-width and
/// direction marks, line and paragraph separators, invisible operators, specials).
fn must_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{200c}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}'
        | '\u{2060}'..='\u{206f}'
        | '\u{fff0}'..='\u{ffff}')
}

/// Appends `value` as a JSON string with SockJS's escaping. Every delivery over a SockJS
/// transport goes through here, so runs of printable ASCII (nearly all of a STOMP frame) are
/// copied whole; only the bytes that may need escaping are looked at one character at a time.
fn push_json_string(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('"');
    let bytes = value.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\' {
            at += 1;
            continue;
        }
        out.push_str(&value[copied..at]);
        // `at` is on a character boundary: every byte before it was ASCII or a whole
        // character stepped over below.
        let Some(c) = value[at..].chars().next() else {
            break;
        };
        push_json_char(out, c);
        at += c.len_utf8();
        copied = at;
    }
    out.push_str(&value[copied..]);
    out.push('"');
}

/// Appends one character of a JSON string: escaped when JSON or SockJS asks for it.
fn push_json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if must_escape(c) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Why a client's payload was refused. The texts are SockJS's own: clients and tests look
/// for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body was empty.
    #[error("Payload expected.")]
    PayloadExpected,
    /// The body was not JSON, or not an array of strings.
    #[error("Broken JSON encoding.")]
    BrokenJson,
}

/// The messages of an `xhr_send` body: a JSON array of strings.
pub fn decode_send(body: &[u8]) -> Result<Vec<String>, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::PayloadExpected);
    }
    serde_json::from_slice::<Vec<String>>(body).map_err(|_| DecodeError::BrokenJson)
}

/// The messages of one SockJS-WebSocket message: a JSON array of strings, or a single JSON
/// string. An empty message carries none (clients may send them; they are ignored).
pub fn decode_websocket(message: &str) -> Result<Vec<String>, DecodeError> {
    if message.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<serde_json::Value>(message) {
        Ok(serde_json::Value::String(one)) => Ok(vec![one]),
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(text) => Ok(text),
                _ => Err(DecodeError::BrokenJson),
            })
            .collect(),
        _ => Err(DecodeError::BrokenJson),
    }
}

/// Whether `id` may be a server or session id: not empty, no dot (the spec reserves them,
/// so `/iframe.html` and friends never parse as sessions), no slash, and not too long.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_CHARS && !id.contains(['.', '/'])
}

/// The `/info` document.
pub fn info(websocket: bool, entropy: u32) -> String {
    serde_json::json!({
        "websocket": websocket,
        "cookie_needed": false,
        "origins": ["*:*"],
        "entropy": entropy,
    })
    .to_string()
}

/// How a receiving transport wraps each frame in its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// xhr polling and xhr streaming: the frame and a newline.
    Newline,
    /// EventSource: `data: <frame>\r\n\r\n`.
    EventSource,
}

impl Wrapping {
    /// What the answer starts with, before any frame.
    pub fn prelude(self, streaming: bool) -> String {
        match (self, streaming) {
            (Wrapping::Newline, true) => {
                let mut prelude = "h".repeat(XHR_STREAMING_PRELUDE_BYTES);
                prelude.push('\n');
                prelude
            }
            (Wrapping::Newline, false) => String::new(),
            (Wrapping::EventSource, _) => "\r\n".to_owned(),
        }
    }

    /// `frame` as written on this transport.
    pub fn wrap(self, frame: &str) -> String {
        match self {
            Wrapping::Newline => {
                let mut out = String::with_capacity(frame.len() + 1);
                out.push_str(frame);
                out.push('\n');
                out
            }
            Wrapping::EventSource => {
                let mut out = String::with_capacity(frame.len() + 10);
                out.push_str("data: ");
                out.push_str(frame);
                out.push_str("\r\n\r\n");
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn close_frames_carry_sockjs_codes_and_reasons() {
        assert_eq!(CloseCode::GoAway.frame(), r#"c[3000,"Go away!"]"#);
        assert_eq!(
            CloseCode::AnotherConnectionOpen.frame(),
            r#"c[2010,"Another connection still open"]"#
        );
        assert_eq!(
            CloseCode::Interrupted.frame(),
            r#"c[1002,"Connection interrupted"]"#
        );
    }

    #[test]
    fn stomp_frames_travel_json_escaped() {
        let stomp = "MESSAGE\ndestination:/sub/x\n\n{\"m\":\"hi\"}\0";
        assert_eq!(
            messages(&[stomp, "\n"]),
            r#"a["MESSAGE\ndestination:/sub/x\n\n{\"m\":\"hi\"}\u0000","\n"]"#
        );
        assert_eq!(messages::<&str>(&[]), "a[]");
    }

    #[test]
    fn characters_browsers_mangle_are_escaped() {
        let frame = messages(&["\u{7f}\u{200d}\u{2028}\u{2063}\u{fff9}\u{ffff}é✓"]);
        assert_eq!(frame, r#"a["\u007f\u200d\u2028\u2063\ufff9\uffffé✓"]"#);
    }

    #[test]
    fn send_bodies_are_arrays_of_strings() {
        assert_eq!(
            decode_send(br#"["a","b"]"#),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            decode_send(br#"["\u0000\n"]"#),
            Ok(vec!["\u{0}\n".to_owned()])
        );
        assert_eq!(decode_send(b""), Err(DecodeError::PayloadExpected));
        for broken in [&br#"["x"#[..], b"[1]", b"\"x\"", b"{}", b"null", b"\xff"] {
            assert_eq!(
                decode_send(broken),
                Err(DecodeError::BrokenJson),
                "{broken:?}"
            );
        }
        assert_eq!(DecodeError::BrokenJson.to_string(), "Broken JSON encoding.");
        assert_eq!(
            DecodeError::PayloadExpected.to_string(),
            "Payload expected."
        );
    }

    #[test]
    fn websocket_messages_are_an_array_or_one_string_and_empty_ones_are_ignored() {
        assert_eq!(
            decode_websocket(r#"["a","b"]"#),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(decode_websocket(r#""a""#), Ok(vec!["a".into()]));
        assert_eq!(decode_websocket(""), Ok(vec![]));
        assert_eq!(decode_websocket(r#"["a"#), Err(DecodeError::BrokenJson));
        assert_eq!(decode_websocket("[null]"), Err(DecodeError::BrokenJson));
    }

    #[test]
    fn ids_have_no_dots_and_are_bounded() {
        for good in ["000", "a", "_", "abcdefgh_i-j%20", "723a2a33-577b"] {
            assert!(valid_id(good), "{good}");
        }
        for bad in ["", ".", "a.", "a.b", "a/b"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert!(valid_id(&"x".repeat(MAX_ID_CHARS)));
        assert!(!valid_id(&"x".repeat(MAX_ID_CHARS + 1)));
    }

    #[test]
    fn info_says_websocket_no_cookie_any_origin_and_entropy() {
        let info: serde_json::Value = serde_json::from_str(&info(true, 42)).expect("JSON");
        assert_eq!(
            info,
            serde_json::json!({"websocket":true,"cookie_needed":false,"origins":["*:*"],"entropy":42})
        );
    }

    #[test]
    fn transports_wrap_frames_their_way() {
        assert_eq!(Wrapping::Newline.wrap("o"), "o\n");
        assert_eq!(Wrapping::EventSource.wrap("o"), "data: o\r\n\r\n");
        let prelude = Wrapping::Newline.prelude(true);
        assert_eq!(prelude.len(), 2049);
        assert!(prelude.starts_with("hhhh") && prelude.ends_with("h\n"));
        assert_eq!(Wrapping::Newline.prelude(false), "");
        assert_eq!(Wrapping::EventSource.prelude(true), "\r\n");
    }

    proptest! {
        /// Whatever the server sends decodes, on the client's side, to exactly what it meant.
        #[test]
        fn array_frames_round_trip(items in proptest::collection::vec(any::<String>(), 0..5)) {
            let frame = messages(&items);
            let body = frame.strip_prefix('a').expect("array frame");
            let decoded: Vec<String> = serde_json::from_str(body).expect("valid JSON");
            prop_assert_eq!(&decoded, &items);
            prop_assert!(!body.chars().any(must_escape));
            prop_assert_eq!(decode_send(body.as_bytes()), Ok(items));
        }

        /// Copying runs of plain ASCII whole writes exactly what escaping each character on
        /// its own would.
        #[test]
        fn escaping_in_runs_equals_escaping_each_character(
            chars in proptest::collection::vec(
                prop_oneof![
                    any::<char>(),
                    proptest::sample::select(vec![
                        'a', ' ', '~', '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}',
                        '\u{80}', '\u{9f}', '\u{a0}', 'é', '\u{200b}', '\u{200c}', '\u{200f}',
                        '\u{2028}', '\u{202f}', '\u{2060}', '\u{206f}', '\u{fff0}', '\u{ffff}', '✓', '😀',
                    ]),
                ],
                0..40,
            )
        ) {
            let value: String = chars.iter().collect();
            let mut expected = String::from('"');
            for &c in &chars {
                push_json_char(&mut expected, c);
            }
            expected.push('"');
            let mut escaped = String::new();
            push_json_string(&mut escaped, &value);
            prop_assert_eq!(escaped, expected);
        }

        /// No body, however broken, makes decoding panic.
        #[test]
        fn any_send_body_decodes_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_send(&body);
            if let Ok(text) = std::str::from_utf8(&body) {
                let _ = decode_websocket(text);
            }
        }
    }
}
