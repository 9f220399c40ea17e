//! The history endpoints' query strings (`GET /message?roomId&limit`,
//! `GET /message/lastMessageId?roomId&limit&lastMessageId`) through the real router of a node
//! whose `lobby` holds 15 messages (one node for every input: reading changes nothing).
//!
//! Input: a control byte (bit 0: which endpoint; bits 1-2: the Authorization header, see
//! [`Auth::from_control`]), then the query string. Bytes no URI may hold are percent-encoded,
//! so every input is a request a client could send.
//!
//! What must hold: every answer is an envelope, never a 5xx; without a valid token, a 401; and
//! with one, the request succeeds exactly when a reading of the query by `form_urlencoded`
//! says it should (`roomId` is `lobby`, `limit` absent or a number from 1 to 100,
//! `lastMessageId` a number on the second endpoint), and then the page holds the newest
//! `limit` messages before `lastMessageId`, newest first.
#![no_main]

use axum::http::StatusCode;
use libfuzzer_sys::fuzz_target;
use rtchat_fuzz::{Auth, Node, runtime};
use std::collections::HashMap;

/// The page size of a request without `limit`, and the largest allowed (the contract's).
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let before_endpoint = control & 1 != 0;
    let auth = Auth::from_control(control >> 1, &mut rest);
    let query = uri_query(rest);
    let path = if before_endpoint {
        "/message/lastMessageId"
    } else {
        "/message"
    };
    let uri = format!("{path}?{query}");
    let node = Node::with_lobby_messages();
    runtime().block_on(async {
        let reply = node.get(&uri, &auth).await;
        if !matches!(auth, Auth::Caller) {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}: {reply:?}");
            return;
        }
        // The server's reading of a repeated parameter is the last one (a map's insert).
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let limit = match params.get("limit") {
            None => Some(DEFAULT_LIMIT),
            Some(value) => value.parse::<usize>().ok(),
        }
        .filter(|limit| (1..=MAX_LIMIT).contains(limit));
        let before = match params.get("lastMessageId") {
            Some(value) if before_endpoint => value.parse::<u64>().ok().map(Some),
            None if before_endpoint => None,
            _ => Some(None),
        };
        let in_lobby = params.get("roomId").map(String::as_str) == Some("lobby");
        let (Some(limit), Some(before), true) = (limit, before, in_lobby) else {
            assert!(
                reply.status.is_client_error(),
                "{uri}: accepted a query it should refuse: {reply:?}"
            );
            return;
        };
        assert_eq!(reply.status, StatusCode::OK, "{uri}: refused: {reply:?}");
        let expected: Vec<u64> = node
            .lobby_ids
            .iter()
            .rev()
            .copied()
            .filter(|&id| before.is_none_or(|before| id < before))
            .take(limit)
            .collect();
        let page: Vec<u64> = reply
            .response
            .as_array()
            .unwrap_or_else(|| panic!("{uri}: a page that is not an array: {reply:?}"))
            .iter()
            .map(|message| {
                assert_eq!(message["roomId"], "lobby", "{uri}: {message}");
                message["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{uri}: {message}"))
            })
            .collect();
        assert_eq!(page, expected, "{uri}: the wrong page");
    });
});

/// `raw` as the query of a URI: bytes outside the printable ASCII range, `#` (it would end
/// the query) and the three printable bytes `http::Uri` refuses in a query (`"`, `<`, `>`:
/// hyper answers such a request itself) percent-encoded; everything else, `%` and `&`
/// included, left for the server to decode.
fn uri_query(raw: &[u8]) -> String {
    let mut query = String::with_capacity(raw.len());
    for &byte in raw {
        if byte.is_ascii_graphic() && !matches!(byte, b'#' | b'"' | b'<' | b'>') {
            query.push(char::from(byte));
        } else {
            query.push_str(&format!("%{byte:02X}"));
        }
    }
    query
}
