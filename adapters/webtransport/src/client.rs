//! A WebTransport client of the wire contract: a session on the STOMP path whose first
//! bidirectional stream carries STOMP bytes. For rtchat's own clients (the CLI, the load
//! generator, the conformance suite and tests). In `per-subscription` mode the server also
//! opens unidirectional streams (accept them on the session); [`FrameSplitter`] cuts each
//! stream into whole frames so they can be merged (`rtchat-client` does both).

use crate::certificate::CertificateHash;
use web_transport_quinn::{ClientBuilder, RecvStream, SendStream, Session};

/// Why a client could not open its STOMP stream.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not an `https://` URL.
    #[error("not a WebTransport URL (https://host:port/path): {0}")]
    Url(String),
    /// The client endpoint could not be made (TLS configuration, UDP socket).
    #[error("cannot make a WebTransport client: {0}")]
    Client(#[source] web_transport_quinn::ClientError),
    /// The QUIC handshake, the certificate check or the CONNECT request failed.
    #[error("cannot open a WebTransport session: {0}")]
    Session(#[source] web_transport_quinn::ClientError),
    /// The session opened but the STOMP stream could not.
    #[error("cannot open the STOMP stream: {0}")]
    Stream(#[source] web_transport_quinn::SessionError),
}

/// An open session and its STOMP stream.
#[derive(Debug)]
pub struct ClientStream {
    /// The session (close it with [`Session::close`]; await [`Session::closed`] for the
    /// server's close code and reason).
    pub session: Session,
    /// What the client writes.
    pub send: SendStream,
    /// What the server writes.
    pub recv: RecvStream,
}

/// Opens a session on `url` (`https://host:port/stomp`) and its STOMP stream. With `pins`,
/// the server's certificate must have one of these hashes (as a browser's
/// `serverCertificateHashes`); without, it is verified against the system's roots.
pub async fn connect(url: &str, pins: &[CertificateHash]) -> Result<ClientStream, ConnectError> {
    let parsed = web_transport_quinn::proto::ConnectRequest::new(
        url.parse::<url::Url>()
            .map_err(|error| ConnectError::Url(format!("{url}: {error}")))?,
    );
    if parsed.url.scheme() != "https" {
        return Err(ConnectError::Url(url.to_owned()));
    }
    let builder = ClientBuilder::new();
    let client = if pins.is_empty() {
        builder.with_system_roots()
    } else {
        builder.with_server_certificate_hashes(pins.iter().map(|pin| pin.0.to_vec()).collect())
    }
    .map_err(ConnectError::Client)?;
    let session = client
        .connect(parsed)
        .await
        .map_err(ConnectError::Session)?;
    let (send, recv) = session.open_bi().await.map_err(ConnectError::Stream)?;
    Ok(ClientStream {
        session,
        send,
        recv,
    })
}

/// Largest frame [`FrameSplitter`] holds while waiting for its end (a server's frames are
/// bounded far below this; a stream that sends more is broken).
pub const MAX_SPLIT_FRAME: usize = 16 * 1024 * 1024;

/// Why [`FrameSplitter::push`] gave up on a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A frame grew past [`MAX_SPLIT_FRAME`] without ending.
    #[error("a STOMP frame longer than {MAX_SPLIT_FRAME} bytes")]
    TooLarge,
    /// A frame's `content-length` body was not followed by its NUL.
    #[error("a STOMP frame's body does not end where its content-length says")]
    BadLength,
}

/// Cuts one stream's bytes into whole STOMP frames (and heart-beat EOLs), so that frames from
/// several streams can be handed to one STOMP parser without ever interleaving mid-frame: in
/// `per-subscription` mode the server writes MESSAGEs on a unidirectional stream per
/// subscription beside the bidirectional one. A frame ends at the NUL after its headers'
/// blank line, or, with a `content-length` header (the first one counts), at the NUL after
/// that many body bytes.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buffer: bytes::BytesMut,
}

impl FrameSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        FrameSplitter::default()
    }

    /// Adds `chunk` and returns the whole frames and EOLs now complete, in order and as one
    /// buffer (empty when none is); the rest is kept for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<bytes::Bytes, SplitError> {
        self.buffer.extend_from_slice(chunk);
        let mut end = 0;
        while let Some(used) = whole_item(&self.buffer[end..])? {
            end += used;
        }
        if self.buffer.len() - end > MAX_SPLIT_FRAME {
            return Err(SplitError::TooLarge);
        }
        Ok(self.buffer.split_to(end).freeze())
    }

    /// Bytes held that do not make a whole frame yet (a stream that ends with some was cut
    /// short).
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// The length of the whole frame or EOL at the start of `buf`, or `None` if it is not whole.
fn whole_item(buf: &[u8]) -> Result<Option<usize>, SplitError> {
    match buf {
        [] => return Ok(None),
        [b'\n', ..] => return Ok(Some(1)),
        [b'\r', b'\n', ..] => return Ok(Some(2)),
        [b'\r'] => return Ok(None),
        _ => {}
    }
    // The headers end at the first empty line (an EOL is `\n` or `\r\n`).
    let mut body_start = None;
    let mut at = 0;
    while let Some(found) = buf[at..].iter().position(|&b| b == b'\n') {
        let eol = at + found;
        match &buf[eol + 1..] {
            [b'\n', ..] => {
                body_start = Some((eol, eol + 2));
                break;
            }
            [b'\r', b'\n', ..] => {
                body_start = Some((eol, eol + 3));
                break;
            }
            [] | [b'\r'] => return Ok(None),
            _ => at = eol + 1,
        }
    }
    let Some((headers_end, body_start)) = body_start else {
        return Ok(None);
    };
    // The first `content-length` counts (STOMP 1.2: repeated headers, the first wins).
    let length = buf[..headers_end]
        .split(|&b| b == b'\n')
        .skip(1)
        .find_map(|line| line.strip_prefix(b"content-length:"))
        .map(|value| {
            std::str::from_utf8(value)
                .ok()
                .map(|value| value.trim_end_matches('\r').trim())
                .and_then(|value| value.parse::<usize>().ok())
                .ok_or(SplitError::BadLength)
        })
        .transpose()?;
    match length {
        Some(length) => {
            let nul = body_start
                .checked_add(length)
                .ok_or(SplitError::BadLength)?;
            match buf.get(nul) {
                None => Ok(None),
                Some(0) => Ok(Some(nul + 1)),
                Some(_) => Err(SplitError::BadLength),
            }
        }
        None => Ok(buf[body_start..]
            .iter()
            .position(|&b| b == 0)
            .map(|nul| body_start + nul + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut splitter = FrameSplitter::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            let whole = splitter.push(piece).expect("valid");
            out.extend_from_slice(&whole);
            // What came out is whole frames: it ends at a NUL or an EOL.
            assert!(whole.is_empty() || matches!(whole.last(), Some(0 | b'\n')));
        }
        assert_eq!(splitter.pending(), 0);
        out
    }

    #[test]
    fn frames_come_out_whole_whatever_the_chunking() {
        let input: &[u8] = b"\nMESSAGE\nsubscription:0\ncontent-length:3\n\na\0b\0\r\nRECEIPT\r\nreceipt-id:1\r\n\r\n\0MESSAGE\ndestination:x\n\nhello\0";
        for chunk in 1..input.len() {
            assert_eq!(split_all(input, chunk), input, "chunk {chunk}");
        }
    }

    #[test]
    fn a_partial_frame_is_held_back() {
        let mut splitter = FrameSplitter::new();
        let whole = splitter
            .push(b"RECEIPT\nreceipt-id:1\n\n\0MESSAGE\nsub")
            .expect("valid");
        assert_eq!(&whole[..], b"RECEIPT\nreceipt-id:1\n\n\0");
        assert_eq!(splitter.pending(), 11);
        let whole = splitter.push(b"scription:0\n\nbody\0").expect("valid");
        assert_eq!(&whole[..], b"MESSAGE\nsubscription:0\n\nbody\0");
    }

    #[test]
    fn a_wrong_content_length_is_an_error() {
        let mut splitter = FrameSplitter::new();
        assert_eq!(
            splitter.push(b"MESSAGE\ncontent-length:2\n\nabc\0"),
            Err(SplitError::BadLength)
        );
    }
}
