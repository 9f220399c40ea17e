//! SockJS framing: what a client sends (`xhr_send` bodies, SockJS-WebSocket messages) and what
//! the server sends back.
//!
//! Input: an `xhr_send` body (and, when UTF-8, a WebSocket message).
//!
//! What must hold: decoding never panics; an empty body is "Payload expected."; what decodes
//! is exactly what serde_json reads as an array of strings; and the server's array frame of
//! those messages decodes back to them, with none of the characters SockJS says browsers
//! mangle left unescaped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtchat_sockjs::frame::{self, DecodeError};

fuzz_target!(|data: &[u8]| {
    let decoded = frame::decode_send(data);
    if data.is_empty() {
        assert_eq!(decoded, Err(DecodeError::PayloadExpected));
        return;
    }
    let reference = serde_json::from_slice::<Vec<String>>(data).ok();
    assert_eq!(decoded.clone().ok(), reference);
    if let Ok(text) = std::str::from_utf8(data) {
        let websocket = frame::decode_websocket(text);
        if let Ok(messages) = &decoded {
            assert_eq!(websocket.as_ref(), Ok(messages));
        }
        if let Ok(one) = serde_json::from_str::<String>(text) {
            assert_eq!(websocket, Ok(vec![one]));
        }
    }
    if let Ok(messages) = decoded {
        let encoded = frame::messages(&messages);
        let array = encoded.strip_prefix('a').expect("an array frame");
        let mangled = |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{fff0}'..='\u{ffff}');
        assert!(!array.chars().any(mangled), "{array:?}");
        assert_eq!(frame::decode_send(array.as_bytes()), Ok(messages));
    }
});
