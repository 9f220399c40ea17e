//! The client side of the wire: splitting what the server sends into frames and heart-beats.
//!
//! Written here on purpose rather than borrowed from `rtchat-stomp`: the suite checks the
//! server's encoder with an independent reading of the spec.

/// A frame as the server sent it (header lines are kept as written, escapes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    /// The command, e.g. `MESSAGE`.
    pub command: String,
    /// Header lines, in order, split at the first colon.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl ServerFrame {
    /// The first value of header `name` (the one that counts, per the spec).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One thing read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An EOL between frames: a heart-beat.
    HeartBeat,
    /// A frame.
    Frame(ServerFrame),
}

/// Accumulates server bytes and hands out whole frames.
#[derive(Debug, Default)]
pub struct StreamReader {
    buffer: Vec<u8>,
}

impl StreamReader {
    /// Adds bytes as they arrived (any chunking).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// True when no partial frame is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The next complete item; `Ok(None)` when more bytes are needed; an error (naming what
    /// is wrong) when the bytes cannot be a STOMP frame.
    pub fn next_item(&mut self) -> Result<Option<Received>, String> {
        if self.buffer.starts_with(b"\n") {
            self.buffer.drain(..1);
            return Ok(Some(Received::HeartBeat));
        }
        if self.buffer.starts_with(b"\r\n") {
            self.buffer.drain(..2);
            return Ok(Some(Received::HeartBeat));
        }
        if self.buffer == b"\r" {
            return Ok(None);
        }
        let mut position = 0;
        let Some(command) = self.line(&mut position)? else {
            return Ok(None);
        };
        if command.is_empty() || !command.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("not a STOMP command line: {command:?}"));
        }
        let mut headers = Vec::new();
        loop {
            let Some(line) = self.line(&mut position)? else {
                return Ok(None);
            };
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("header line without a colon in {command}: {line:?}"))?;
            headers.push((name.to_owned(), value.to_owned()));
        }
        let content_length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("content-length is not a number in {command}: {value:?}"))
            })
            .transpose()?;
        let rest = &self.buffer[position..];
        let body_length = match content_length {
            Some(length) => {
                if rest.len() <= length {
                    return Ok(None);
                }
                if rest[length] != 0 {
                    return Err(format!(
                        "{command}: the byte after content-length {length} bytes of body is not NUL"
                    ));
                }
                length
            }
            None => match rest.iter().position(|&b| b == 0) {
                Some(length) => length,
                None => return Ok(None),
            },
        };
        let body = rest[..body_length].to_vec();
        self.buffer.drain(..position + body_length + 1);
        Ok(Some(Received::Frame(ServerFrame {
            command,
            headers,
            body,
        })))
    }

    /// The line starting at `position` (without its `\n` or `\r\n`), moving past it.
    fn line(&self, position: &mut usize) -> Result<Option<String>, String> {
        let rest = &self.buffer[*position..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        let line = std::str::from_utf8(line).map_err(|_| {
            format!(
                "a frame line is not UTF-8: {:?}",
                String::from_utf8_lossy(line)
            )
        })?;
        *position += end + 1;
        Ok(Some(line.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_heart_beats_in_any_chunking() {
        let wire = b"\nRECEIPT\nreceipt-id:1\n\n\0MESSAGE\ncontent-length:3\n\na\0b\0\r\n";
        for split in 0..wire.len() {
            let mut reader = StreamReader::default();
            let mut items = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                reader.push(chunk);
                while let Some(item) = reader.next_item().expect("valid") {
                    items.push(item);
                }
            }
            assert_eq!(items.len(), 4, "split at {split}");
            assert_eq!(items[0], Received::HeartBeat);
            let Received::Frame(message) = &items[2] else {
                panic!("frame expected");
            };
            assert_eq!(message.body, b"a\0b");
            assert_eq!(items[3], Received::HeartBeat);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut reader = StreamReader::default();
        reader.push(b"hello\n");
        assert!(reader.next_item().is_err());
    }
}
