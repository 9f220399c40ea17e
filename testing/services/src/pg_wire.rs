//! Just enough of PostgreSQL's frontend/backend protocol (version 3) to tell whether a server
//! accepts sessions, and to run a setup statement: no client library, so no async runtime
//! and no TLS stack for a readiness check.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The protocol version in the startup message: 3.0.
const PROTOCOL_VERSION_3: i32 = 196_608;
/// Connecting, and every read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger messages are not something a setup statement gets back: refuse, not allocate.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why a session could not be opened or a statement failed.
#[derive(Debug)]
pub(crate) enum WireError {
    /// Connecting, reading or writing failed (e.g. connection refused while it is down).
    Io(io::Error),
    /// The server answered with an error.
    Server {
        /// The SQLSTATE, e.g. `57P03` while it starts up.
        code: String,
        /// Its human message.
        message: String,
    },
    /// The server sent something this client does not handle.
    Unexpected(String),
}

impl From<io::Error> for WireError {
    fn from(error: io::Error) -> WireError {
        WireError::Io(error)
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(error) => write!(f, "{error}"),
            WireError::Server { code, message } => write!(f, "{message} (SQLSTATE {code})"),
            WireError::Unexpected(what) => write!(f, "{what}"),
        }
    }
}

/// Opens a session as `user` on `database` at 127.0.0.1:`port` (trust authentication), runs
/// `sql` if given (simple query protocol: several `;`-separated statements are fine), and
/// closes the session.
pub(crate) fn session(
    port: u16,
    user: &str,
    database: &str,
    sql: Option<&str>,
) -> Result<(), WireError> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(&startup_message(user, database)?)?;
    let mut pending = sql;
    loop {
        let (tag, body) = read_message(&mut stream)?;
        match tag {
            b'R' => {
                let method = body
                    .get(..4)
                    .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                    .map(i32::from_be_bytes);
                if method != Some(0) {
                    return Err(WireError::Unexpected(format!(
                        "the server asks for authentication ({method:?}); trust was expected"
                    )));
                }
            }
            b'E' => return Err(server_error(&body)),
            // Ready for query: after the startup, or after the statement.
            b'Z' => match pending.take() {
                Some(sql) => stream.write_all(&message(Some(b'Q'), &c_string(sql))?)?,
                None => {
                    // Best effort: the server cleans up after a dropped connection anyway.
                    let _ = stream.write_all(&message(Some(b'X'), &[])?);
                    return Ok(());
                }
            },
            // Parameter status, backend key, notices, rows, command completion.
            _ => {}
        }
    }
}

fn startup_message(user: &str, database: &str) -> Result<Vec<u8>, WireError> {
    let mut body = PROTOCOL_VERSION_3.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", database)] {
        body.extend(c_string(key));
        body.extend(c_string(value));
    }
    body.push(0);
    message(None, &body)
}

/// A message: the tag (the startup message has none), the length, the body.
fn message(tag: Option<u8>, body: &[u8]) -> Result<Vec<u8>, WireError> {
    let length = i32::try_from(body.len() + 4)
        .map_err(|_| WireError::Unexpected("message too long".to_owned()))?;
    let mut bytes = Vec::with_capacity(body.len() + 5);
    bytes.extend(tag);
    bytes.extend(length.to_be_bytes());
    bytes.extend(body);
    Ok(bytes)
}

fn c_string(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

fn read_message(stream: &mut TcpStream) -> Result<(u8, Vec<u8>), WireError> {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header)?;
    let [tag, length @ ..] = header;
    let length = usize::try_from(i32::from_be_bytes(length))
        .ok()
        .and_then(|length| length.checked_sub(4))
        .filter(|&length| length <= MAX_MESSAGE_BYTES)
        .ok_or_else(|| {
            WireError::Unexpected(format!("bad length in a message tagged {}", tag as char))
        })?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((tag, body))
}

/// An ErrorResponse's code (`C`) and message (`M`) fields.
fn server_error(body: &[u8]) -> WireError {
    let mut code = String::new();
    let mut message = String::new();
    let mut fields = body;
    while let Some((&kind, rest)) = fields.split_first() {
        if kind == 0 {
            break;
        }
        let end = rest
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(rest.len());
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        fields = rest.get(end + 1..).unwrap_or(&[]);
    }
    WireError::Server { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_is_length_version_then_key_value_pairs() {
        let bytes = startup_message("postgres", "test").expect("encodes");
        let expected_body = b"\x00\x03\x00\x00user\0postgres\0database\0test\0\0";
        assert_eq!(&bytes[4..], expected_body);
        assert_eq!(
            i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
    }

    #[test]
    fn error_response_yields_code_and_message() {
        let body = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        match server_error(body) {
            WireError::Server { code, message } => {
                assert_eq!(code, "57P03");
                assert_eq!(message, "the database system is starting up");
            }
            other => panic!("expected a server error, got {other:?}"),
        }
    }
}
