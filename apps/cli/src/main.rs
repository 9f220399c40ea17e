//! `rtchat-cli`: a command-line client for rtchat over WebSocket or WebTransport.
//!
//! It takes a token from `GET /init` and keeps it (so the same identity comes back), joins a
//! room, sends `--send` texts, prints `--listen N` messages (as `name #tag: text` lines, or
//! JSON with `--json`) and leaves; with neither, it is an interactive prompt. Errors end it
//! with a message on stderr and exit status 1 (2 for bad flags).

mod error;
mod http;
mod interactive;
mod link;
mod output;
mod token;

use clap::{Parser, ValueEnum};
use error::CliError;
use http::Api;
use link::{Link, Stomp};
use rtchat_stomp::{Command, Frame};
use rtchat_webtransport::CertificateHash;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Which transport carries STOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// WebSocket on the server's `/ws`.
    Ws,
    /// WebTransport (QUIC) on the URL `GET /webtransport` gives.
    Wt,
}

/// Flags.
#[derive(Debug, Parser)]
#[command(
    name = "rtchat-cli",
    version,
    about = "Chat on an rtchat server from the command line"
)]
struct Args {
    /// The server's address: http://host:port, or https://host:port (then /ws is wss://;
    /// certificates are checked against the system's roots, or SSL_CERT_FILE's).
    #[arg(long, env = "RTCHAT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The transport STOMP runs on.
    #[arg(long, value_enum, default_value = "ws")]
    transport: Transport,
    /// The room to join.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Send this text to the room (repeatable; sent in order, each confirmed by the server).
    #[arg(long = "send", value_name = "TEXT")]
    sends: Vec<String>,
    /// Print this many of the room's messages, then leave (own messages count).
    #[arg(long, value_name = "N")]
    listen: Option<u64>,
    /// Start with the room's stored messages after this seq (0: from the first).
    #[arg(long, value_name = "S")]
    since_seq: Option<u64>,
    /// Print each message as its JSON, one per line.
    #[arg(long)]
    json: bool,
    /// Keep the token in this file instead of the user's config directory.
    #[arg(long, value_name = "F")]
    token_file: Option<PathBuf>,
    /// The WebTransport URL (default: from `GET /webtransport`).
    #[arg(long, value_name = "URL")]
    wt_url: Option<String>,
    /// A SHA-256 certificate hash to pin for WebTransport, hex or base64 (repeatable;
    /// default: from `GET /webtransport`).
    #[arg(long, value_name = "HASH")]
    cert_hash: Vec<String>,
    /// Longest wait for the server's answers (not for `--listen`'s messages).
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rtchat-cli: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), CliError> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let api = Api::new(&args.server, timeout)?;
    let pins = args
        .cert_hash
        .iter()
        .map(|hash| parse_hash(hash))
        .collect::<Result<Vec<_>, _>>()?;
    let token_file = match &args.token_file {
        Some(path) => path.clone(),
        None => token::default_path(&api)?,
    };
    let token = token::obtain(&api, &token_file).await?;
    let link = tokio::time::timeout(timeout, open_link(&api, &args, pins))
        .await
        .map_err(|_| CliError::Timeout(timeout, "connection"))??;
    let mut stomp = Stomp::connect(link, &token, timeout).await?;
    let session = Session {
        api,
        token,
        room: args.room.clone(),
        json: args.json,
    };
    if args.sends.is_empty() && args.listen.is_none() {
        return interactive::run(stomp, session, args.since_seq).await;
    }
    let printed = std::cell::Cell::new(0);
    let limit = args.listen.unwrap_or(0);
    let mut print = |frame: Frame| {
        if printed.get() < limit
            && let Some(message) = output::chat_message(&frame)
        {
            println!("{}", output::line(&message, args.json));
            printed.set(printed.get() + 1);
        }
    };
    stomp
        .request(
            subscribe(&args.room, args.since_seq),
            "joined",
            "the SUBSCRIBE receipt",
            &mut print,
        )
        .await?;
    for (index, text) in args.sends.iter().enumerate() {
        stomp
            .request(
                send(&args.room, text),
                &format!("sent-{index}"),
                "the SEND receipt",
                &mut print,
            )
            .await?;
    }
    while printed.get() < limit {
        match stomp.next_frame().await? {
            Some(frame) => print(frame),
            None => return Err(CliError::Closed("messages")),
        }
    }
    stomp.disconnect(|_| {}).await
}

/// What the interactive mode needs besides the STOMP session.
pub(crate) struct Session {
    api: Api,
    token: String,
    room: String,
    json: bool,
}

async fn open_link(api: &Api, args: &Args, pins: Vec<CertificateHash>) -> Result<Link, CliError> {
    match args.transport {
        Transport::Ws => Ok(Link::websocket(&api.ws_url()).await?),
        Transport::Wt => {
            let (url, pins) = match (&args.wt_url, pins.is_empty()) {
                (Some(url), false) => (url.clone(), pins),
                _ => {
                    let (offered_url, offered_pins) = webtransport_offer(api).await?;
                    let pins = if pins.is_empty() { offered_pins } else { pins };
                    (args.wt_url.clone().unwrap_or(offered_url), pins)
                }
            };
            Ok(Link::webtransport(&url, &pins).await?)
        }
    }
}

/// The URL and hashes of `GET /webtransport`.
async fn webtransport_offer(api: &Api) -> Result<(String, Vec<CertificateHash>), CliError> {
    let answer = api.get("/webtransport", None).await?;
    if answer.status == 404 {
        return Err(CliError::NoWebTransport);
    }
    match rtchat_client::WebTransportOffer::from_envelope(&answer.body) {
        Ok(offer) => Ok((offer.url, offer.pins)),
        Err(rtchat_client::OfferError::Off) => Err(CliError::NoWebTransport),
        Err(rtchat_client::OfferError::Malformed(what)) => Err(CliError::BadAnswer {
            url: api.url("/webtransport"),
            what: what.to_owned(),
        }),
    }
}

/// 64 hex digits (colons allowed, as `openssl x509 -fingerprint` prints them) or the base64
/// of 32 bytes.
fn parse_hash(text: &str) -> Result<CertificateHash, CliError> {
    use base64::Engine as _;
    let bad = || CliError::CertHash(text.to_owned());
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad()))
            .collect::<Result<Vec<u8>, _>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| bad())?
    };
    Ok(CertificateHash(bytes.try_into().map_err(|_| bad())?))
}

/// SUBSCRIBE to `room` (id 0), from `since_seq` when given.
fn subscribe(room: &str, since_seq: Option<u64>) -> Frame {
    let frame = Frame::new(Command::Subscribe)
        .header("id", "0")
        .header("destination", format!("/sub/channel/{room}"));
    match since_seq {
        Some(seq) => frame.header("since-seq", seq.to_string()),
        None => frame,
    }
}

/// SEND `text` to `room`.
fn send(room: &str, text: &str) -> Frame {
    let body = serde_json::json!({ "roomId": room, "message": text }).to_string();
    Frame::new(Command::Send)
        .header("destination", "/pub/chat")
        .header("content-type", "application/json")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_or_base64_of_32_bytes() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_hash(&hex).expect("hex").0[31], 0xff);
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_hash(&colons).expect("hex with colons").0[31], 0xff);
        let base64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8=";
        assert_eq!(parse_hash(base64).expect("base64").0[31], 0xff);
        for bad in ["", "abc", "AAAA", &"0".repeat(63), &"zz".repeat(32)] {
            assert!(parse_hash(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_and_https_servers_are_taken() {
        let timeout = Duration::from_secs(1);
        assert_eq!(
            Api::new("http://127.0.0.1:8080", timeout)
                .expect("ok")
                .ws_url(),
            "ws://127.0.0.1:8080/ws"
        );
        assert_eq!(
            Api::new("http://localhost", timeout)
                .expect("ok")
                .authority(),
            "localhost:80"
        );
        let secure = Api::new("https://chat.example", timeout).expect("https is taken");
        assert_eq!(secure.ws_url(), "wss://chat.example:443/ws");
        assert_eq!(secure.url("/init"), "https://chat.example:443/init");
        assert_eq!(
            Api::new("wss://chat.example:8443", timeout)
                .expect("wss names the same server")
                .url("/init"),
            "https://chat.example:8443/init"
        );
        for bad in ["127.0.0.1:8080", "ftp://x", "http://h/p", "https://h/p"] {
            assert!(Api::new(bad, timeout).is_err(), "{bad:?}");
        }
    }
}
