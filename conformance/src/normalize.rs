//! Normalisation: volatile values replaced by stable placeholders, so two runs (and two
//! adapter combinations) of one transcript record the same text.
//!
//! | what | becomes |
//! |---|---|
//! | `session` header | `<session>` |
//! | `epoch` header (the store's log epoch) | `<epoch-N>` |
//! | `server` header `name/version` | `name/<version>` |
//! | numeric `message-id` and JSON `"id"` (chat message ids) | `<id-N>` |
//! | other `message-id`s (presence, entry, errors, history) | `<msg-N>` |
//! | `ack` header | `<ack-N>` |
//! | JSON `"createdAt"` in RFC 3339 UTC with milliseconds | `<createdAt>` |
//!
//! `N` counts distinct values in order of first appearance within one transcript run, so the
//! same message keeps its number everywhere and the order of ids is still checked. A
//! `createdAt` that is not in the contract's format is left as it is (and so fails the
//! snapshot). Clients quote a normalised value back as `{id-N}`, `{ack-N}`, `{msg-N}`.

use crate::stream::ServerFrame;
use std::collections::HashMap;

/// A frame after normalisation, ready to compare and to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalFrame {
    /// The command.
    pub command: String,
    /// Header lines, in the order received, values normalised.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy for non-UTF-8 bytes), normalised.
    pub body: String,
}

impl NormalFrame {
    /// The frame in transcript syntax: command, headers, blank line, body, `^@`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.command);
        out.push('\n');
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push(':');
            out.push_str(value);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&escape_text(&self.body));
        out.push_str("^@");
        out
    }
}

/// Escapes what transcript syntax gives a meaning to: `^` as `^^`, NUL as `^@`, CR as `^M`.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '^' => out.push_str("^^"),
            '\0' => out.push_str("^@"),
            '\r' => out.push_str("^M"),
            c => out.push(c),
        }
    }
    out
}

/// Numbers distinct values of one kind in order of first appearance.
#[derive(Debug, Default)]
struct Numbering {
    by_value: HashMap<String, usize>,
    values: Vec<String>,
}

impl Numbering {
    fn number(&mut self, value: &str) -> usize {
        if let Some(&n) = self.by_value.get(value) {
            return n;
        }
        self.values.push(value.to_owned());
        let n = self.values.len();
        self.by_value.insert(value.to_owned(), n);
        n
    }

    fn value(&self, n: usize) -> Option<&str> {
        n.checked_sub(1)
            .and_then(|i| self.values.get(i))
            .map(String::as_str)
    }
}

/// The normaliser of one transcript run (its numbering spans every client).
#[derive(Debug, Default)]
pub struct Normalizer {
    ids: Numbering,
    messages: Numbering,
    acks: Numbering,
    epochs: Numbering,
}

impl Normalizer {
    /// Normalises a received frame.
    pub fn frame(&mut self, frame: &ServerFrame) -> NormalFrame {
        let headers = frame
            .headers
            .iter()
            .map(|(name, value)| {
                let value = match name.as_str() {
                    "session" => "<session>".to_owned(),
                    "epoch" => format!("<epoch-{}>", self.epochs.number(value)),
                    "server" => match value.split_once('/') {
                        Some((product, _version)) => format!("{product}/<version>"),
                        None => value.clone(),
                    },
                    "message-id" if is_number(value) => format!("<id-{}>", self.ids.number(value)),
                    "message-id" => format!("<msg-{}>", self.messages.number(value)),
                    "ack" => format!("<ack-{}>", self.acks.number(value)),
                    _ => value.clone(),
                };
                (name.clone(), value)
            })
            .collect();
        let body = String::from_utf8_lossy(&frame.body);
        NormalFrame {
            command: frame.command.clone(),
            headers,
            body: self.body(&body),
        }
    }

    /// The real value behind `<kind-n>`, for a client's `{kind-n}`.
    pub fn value(&self, kind: &str, n: usize) -> Option<&str> {
        match kind {
            "id" => self.ids.value(n),
            "msg" => self.messages.value(n),
            "ack" => self.acks.value(n),
            _ => None,
        }
    }

    /// Replaces `"id":<number>` and `"createdAt":"<timestamp>"` in JSON text. Hand-written
    /// rather than parsed so the text (key order, spacing) is still compared as sent.
    fn body(&mut self, body: &str) -> String {
        const ID: &str = "\"id\":";
        const CREATED_AT: &str = "\"createdAt\":\"";
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        loop {
            let next_id = rest.find(ID);
            let next_created = rest.find(CREATED_AT);
            let (at, is_id) = match (next_id, next_created) {
                (None, None) => break,
                (Some(i), None) => (i, true),
                (None, Some(c)) => (c, false),
                (Some(i), Some(c)) => (i.min(c), i < c),
            };
            if is_id {
                let start = at + ID.len();
                out.push_str(&rest[..start]);
                let digits = rest[start..].bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    let value = &rest[start..start + digits];
                    out.push_str(&format!("<id-{}>", self.ids.number(value)));
                }
                rest = &rest[start + digits..];
            } else {
                let start = at + CREATED_AT.len();
                out.push_str(&rest[..start]);
                let end = rest[start..].find('"').map_or(rest.len(), |e| start + e);
                let value = &rest[start..end];
                if is_rfc3339_millis(value) {
                    out.push_str("<createdAt>");
                } else {
                    out.push_str(value);
                }
                rest = &rest[end..];
            }
        }
        out.push_str(rest);
        out
    }
}

fn is_number(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the contract's `createdAt`.
fn is_rfc3339_millis(value: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    value.len() == SHAPE.len()
        && value.bytes().zip(SHAPE).all(|(b, &s)| match s {
            b'd' => b.is_ascii_digit(),
            s => b == s,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(headers: &[(&str, &str)], body: &str) -> ServerFrame {
        ServerFrame {
            command: "MESSAGE".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn volatile_values_are_numbered_by_first_appearance() {
        let mut n = Normalizer::default();
        let first = n.frame(&frame(
            &[
                ("message-id", "17"),
                ("ack", "5"),
                ("session", "s-abc"),
                ("server", "rtchat/0.1.0"),
            ],
            r#"{"id":17,"createdAt":"2026-01-02T03:04:05.678Z","x":"^"}"#,
        ));
        assert_eq!(
            first.headers,
            vec![
                ("message-id".to_owned(), "<id-1>".to_owned()),
                ("ack".to_owned(), "<ack-1>".to_owned()),
                ("session".to_owned(), "<session>".to_owned()),
                ("server".to_owned(), "rtchat/<version>".to_owned()),
            ]
        );
        assert_eq!(
            first.body,
            r#"{"id":<id-1>,"createdAt":"<createdAt>","x":"^"}"#
        );
        let history = n.frame(&frame(&[("message-id", "h-9")], r#"[{"id":18},{"id":17}]"#));
        assert_eq!(history.headers[0].1, "<msg-1>");
        assert_eq!(history.body, r#"[{"id":<id-2>},{"id":<id-1>}]"#);
        assert_eq!(n.value("id", 2), Some("18"));
        assert_eq!(n.value("ack", 1), Some("5"));
        assert_eq!(n.value("ack", 2), None);
        assert!(history.render().ends_with("]^@"));
    }

    #[test]
    fn malformed_timestamps_stay_visible() {
        let mut n = Normalizer::default();
        let f = n.frame(&frame(&[], r#"{"createdAt":"yesterday"}"#));
        assert_eq!(f.body, r#"{"createdAt":"yesterday"}"#);
    }
}
