//! The HTTP API of docs/protocol.md against a real server on a loopback port: every answer in the
//! envelope, bad input as a 400 with a message, never a panic.

mod common;

use common::TestServer;
use rtchat_chat::Identity;
use rtchat_driver::ChatUseCases;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn assert_envelope(body: &Value, success: bool, kind: &str) {
    assert_eq!(body["success"], success, "{body}");
    assert_eq!(body["type"], kind, "{body}");
    assert!(body.get("response").is_some(), "{body}");
    assert!(body.get("error").is_some(), "{body}");
    if success {
        assert_eq!(body["error"], Value::Null, "{body}");
    } else {
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three JWT parts");
    serde_json::from_slice(&base64url(payload)).expect("JSON claims")
}

/// Minimal base64url decoding, to read claims the way a browser does.
fn base64url(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = alphabet.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[tokio::test]
async fn init_without_a_token_issues_one_with_the_contract_claims() {
    let server = TestServer::start().await;
    for headers in [vec![], vec![("Authorization", "Bearer null")]] {
        let response = server.request("GET", "/init", &headers, None).await;
        assert_eq!(response.status, 200);
        assert_envelope(&response.body, true, "SUCCESS_TOKEN_ISSUANCE");
        let token = response.body["response"].as_str().expect("token");
        let claims = claims(token);
        let tag = claims["sub"].as_str().expect("sub");
        assert!(
            tag.len() == 7
                && tag.starts_with('#')
                && tag[1..]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{tag}"
        );
        assert!(!claims["randId"].as_str().expect("randId").is_empty());
        assert_eq!(claims["iss"], "rtchat");
        // An array, as Spring-era pages read it (`aud[0]`).
        assert_eq!(claims["aud"], json!(["127.0.0.1"]));
        for claim in ["jti", "iat", "nbf", "exp"] {
            assert!(claims.get(claim).is_some(), "missing {claim}: {claims}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn init_accepts_a_valid_token_and_refuses_a_forged_one() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let valid = server
        .request("GET", "/init", &[("Authorization", &bearer(&token))], None)
        .await;
    assert_eq!(valid.status, 200);
    assert_eq!(valid.body["success"], true);
    assert_eq!(valid.body["response"], token.as_str());

    // Same claims, another signature.
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[2] = "c2lnbmF0dXJlLWZyb20tc29tZW9uZS1lbHNl";
    let forged = parts.join(".");
    for bad in [forged.as_str(), "garbage", "a.b.c"] {
        let response = server
            .request("GET", "/init", &[("Authorization", &bearer(bad))], None)
            .await;
        assert_eq!(response.status, 401, "{bad}");
        assert_envelope(&response.body, false, "INVALID_TOKEN");
        assert_eq!(
            response.body["response"],
            Value::Null,
            "no new token for a bad one"
        );
    }
    let not_bearer = server
        .request("GET", "/init", &[("Authorization", "Basic abc")], None)
        .await;
    assert_eq!(not_bearer.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn history_needs_a_valid_token() {
    let server = TestServer::start().await;
    let missing = server.get("/message?roomId=lobby&limit=10").await;
    assert_eq!(missing.status, 401);
    assert_envelope(&missing.body, false, "MISSING_TOKEN");
    let invalid = server
        .request(
            "GET",
            "/message?roomId=lobby&limit=10",
            &[("Authorization", "Bearer nope")],
            None,
        )
        .await;
    assert_eq!(invalid.status, 401);
    assert_envelope(&invalid.body, false, "INVALID_TOKEN");
    server.stop().await;
}

#[tokio::test]
async fn history_pages_newest_first_with_keyset_pagination() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let author = Identity {
        rand_id: "Wren7".to_owned(),
        name_tag: "#ABCDEF".to_owned(),
    };
    let client = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
    let mut ids = Vec::new();
    for n in 0..25 {
        let message = server
            .service
            .post_message(&author, client, "lobby", &format!("message {n}"))
            .await
            .expect("stored");
        ids.push(message.id);
    }
    let auth = bearer(&token);
    let newest = server
        .request(
            "GET",
            "/message?roomId=lobby&limit=10",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(newest.status, 200);
    assert_envelope(&newest.body, true, "SUCCESS");
    let page: Vec<Value> = newest.body["response"].as_array().expect("array").clone();
    assert_eq!(page.len(), 10);
    assert_eq!(page[0]["message"], "message 24");
    assert_eq!(page[9]["message"], "message 15");
    assert_eq!(page[0]["randId"], "Wren7");
    assert_eq!(page[0]["nameTag"], "#ABCDEF");
    assert_eq!(page[0]["roomId"], "lobby");
    assert_eq!(page[0]["ipAddress"], "192.168", "only the first two octets");
    assert!(page[0]["createdAt"].is_string());

    let oldest_shown = page[9]["id"].as_u64().expect("numeric id");
    let older = server
        .request(
            "GET",
            &format!("/message/lastMessageId?roomId=lobby&limit=10&lastMessageId={oldest_shown}"),
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(older.status, 200);
    let older: Vec<Value> = older.body["response"].as_array().expect("array").clone();
    assert_eq!(older.len(), 10);
    assert_eq!(older[0]["message"], "message 14");
    assert_eq!(older[9]["message"], "message 5");
    server.stop().await;
}

#[tokio::test]
async fn bad_history_parameters_get_a_400_envelope() {
    let server = TestServer::start().await;
    let auth = bearer(&server.token().await);
    for path in [
        "/message?limit=10",
        "/message?roomId=lobby&limit=abc",
        "/message?roomId=lobby&limit=-1",
        "/message?roomId=lobby&limit=0",
        "/message?roomId=lobby&limit=100000",
        "/message/lastMessageId?roomId=lobby&limit=10",
        "/message/lastMessageId?roomId=lobby&limit=10&lastMessageId=x",
        "/message?roomId=bad%20room&limit=10",
    ] {
        let response = server
            .request("GET", path, &[("Authorization", &auth)], None)
            .await;
        assert_eq!(response.status, 400, "{path}: {}", response.body);
        assert_eq!(response.body["success"], false, "{path}");
        assert!(response.body["error"]["message"].is_string(), "{path}");
    }
    let unknown = server
        .request(
            "GET",
            "/message?roomId=nowhere&limit=10",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_envelope(&unknown.body, false, "UNKNOWN_ROOM");
    server.stop().await;
}

#[tokio::test]
async fn rooms_are_listed_created_and_conflicts_are_409() {
    let server = TestServer::start().await;
    let rooms = server.get("/rooms").await;
    assert_eq!(rooms.status, 200);
    assert_envelope(&rooms.body, true, "SUCCESS");
    let list = rooms.body["response"].as_array().expect("array");
    assert!(
        list.iter().any(|room| room["roomId"] == "lobby"
            && room["count"] == 0
            && room["name"].is_string()),
        "{list:?}"
    );

    // Creating rooms needs a token.
    let anonymous = server
        .request("POST", "/rooms", &[], Some(r#"{"name":"Spam"}"#))
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let bearer = format!("Bearer {}", server.token().await);
    let auth = [("Authorization", bearer.as_str())];
    let created = server
        .request(
            "POST",
            "/rooms",
            &auth,
            Some(r#"{"name":"Rust fans","roomId":"rust"}"#),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(
        created.body["response"],
        json!({"roomId": "rust", "name": "Rust fans"})
    );
    let again = server
        .request(
            "POST",
            "/rooms",
            &auth,
            Some(r#"{"name":"Other","roomId":"rust"}"#),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_envelope(&again.body, false, "ROOM_EXISTS");

    let generated = server
        .request("POST", "/rooms", &auth, Some(r#"{"name":"No id"}"#))
        .await;
    assert_eq!(generated.status, 200);
    assert!(
        generated.body["response"]["roomId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    for bad in [
        "not json",
        r#"{"roomId":"x"}"#,
        r#"{"name":""}"#,
        r#"{"name":"x","roomId":"has space"}"#,
    ] {
        let response = server.request("POST", "/rooms", &auth, Some(bad)).await;
        assert_eq!(response.status, 400, "{bad}: {}", response.body);
        assert_eq!(response.body["success"], false);
    }
    let listed = server.get("/rooms").await;
    let ids: Vec<&str> = listed.body["response"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|room| room["roomId"].as_str())
        .collect();
    assert!(ids.contains(&"rust"), "{ids:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_private_room_is_the_same_for_the_same_pair_and_its_two_members_only() {
    let server = TestServer::start().await;
    let as_who = |tag: &str| format!("Bearer {}", server.token_for(tag));
    let (alice, bob, carol) = (as_who("#AAAAAA"), as_who("#BBBBBB"), as_who("#CCCCCC"));
    let pair = r##"{"senderId":"#AAAAAA","receiverId":"#BBBBBB"}"##;
    let ask = |bearer: String, body: &'static str| {
        let server = &server;
        async move {
            let headers = [("Authorization", bearer.as_str())];
            server
                .request("POST", "/chatroom/private", &headers, Some(body))
                .await
        }
    };

    let anonymous = server
        .request("POST", "/chatroom/private", &[], Some(pair))
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let stranger = ask(carol.clone(), pair).await;
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    assert_envelope(&stranger.body, false, "FORBIDDEN");

    let first = ask(alice.clone(), pair).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["response"]["senderId"], "#AAAAAA");
    assert_eq!(first.body["response"]["receiverId"], "#BBBBBB");
    let room = first.body["response"]["roomId"]
        .as_str()
        .expect("roomId")
        .to_owned();
    let again = ask(alice.clone(), pair).await;
    assert_eq!(again.body["response"]["roomId"], room.as_str());
    let reversed = ask(
        bob.clone(),
        r##"{"senderId":"#BBBBBB","receiverId":"#AAAAAA"}"##,
    )
    .await;
    assert_eq!(reversed.body["response"]["roomId"], room.as_str());
    let other = ask(
        alice.clone(),
        r##"{"senderId":"#AAAAAA","receiverId":"#CCCCCC"}"##,
    )
    .await;
    assert_ne!(other.body["response"]["roomId"], room.as_str());

    // Its history is its members' only, even for someone who knows the id.
    let path = format!("/message?roomId={room}&limit=10");
    let read = |bearer: String| {
        let (server, path) = (&server, path.clone());
        async move {
            let headers = [("Authorization", bearer.as_str())];
            server.request("GET", &path, &headers, None).await
        }
    };
    assert_eq!(read(bob).await.status, 200);
    let refused = read(carol).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_envelope(&refused.body, false, "FORBIDDEN");
    // And it is not listed.
    let listed = server.get("/rooms").await;
    assert!(!listed.body.to_string().contains(&room));
    server.stop().await;
}

#[tokio::test]
async fn health_page_assets_and_unknown_paths() {
    let server = TestServer::start().await;
    let health = server.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_envelope(&health.body, true, "SUCCESS");
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["response"]["status"], "ready");

    let page = server.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.head.contains("content-type: text/html"));
    assert!(
        page.head
            .contains("content-security-policy: default-src 'self'")
    );
    assert!(
        page.body
            .as_str()
            .is_some_and(|html| html.contains("<html"))
    );
    for asset in [
        "/assets/app.js",
        "/assets/style.css",
        "/assets/stomp.umd.min.js",
    ] {
        assert_eq!(server.get(asset).await.status, 200, "{asset}");
    }
    let missing_asset = server.get("/assets/secret.txt").await;
    assert_eq!(missing_asset.status, 404);
    let unknown = server.get("/no/such/thing").await;
    assert_eq!(unknown.status, 404);
    assert_envelope(&unknown.body, false, "NOT_FOUND");
    server.stop().await;
}

#[tokio::test]
async fn rooms_and_new_identities_are_limited_per_hour_with_a_retry_after() {
    let mut config = common::config();
    config.rooms_per_hour = 2;
    config.tokens_per_hour = 3;
    let server = TestServer::start_with(config).await;
    // New identities from one address: three, then 429 with Retry-After.
    for _ in 0..3 {
        assert_eq!(server.get("/init").await.status, 200);
    }
    let refused = server.get("/init").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_envelope(&refused.body, false, "RATE_LIMITED");
    let retry_after: u64 = refused
        .head
        .lines()
        .find_map(|line| line.strip_prefix("retry-after: "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a Retry-After header");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    // Someone who already has a token is not affected.
    let token = server.token_for("#AAAAAA");
    let valid = server
        .request(
            "GET",
            "/init",
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(valid.status, 200);

    // Rooms: two per identity (and per address) an hour.
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    for name in ["one", "two"] {
        let body = format!(r#"{{"name":"{name}"}}"#);
        let created = server.request("POST", "/rooms", &auth, Some(&body)).await;
        assert_eq!(created.status, 200, "{}", created.body);
    }
    let third = server
        .request("POST", "/rooms", &auth, Some(r#"{"name":"three"}"#))
        .await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.head.contains("retry-after: "));
    // Another identity from the same address is limited too: tokens are free to mint.
    let other = format!("Bearer {}", server.token_for("#BBBBBB"));
    let other_auth = [("Authorization", other.as_str())];
    let from_same_address = server
        .request("POST", "/rooms", &other_auth, Some(r#"{"name":"four"}"#))
        .await;
    assert_eq!(from_same_address.status, 429);
    server.stop().await;
}

#[tokio::test]
async fn cors_for_configured_origins_and_rooms_that_exist_from_the_start() {
    const PAGE: &str = "http://127.0.0.1:5500";
    const FIXED_ROOM: &str = "723a2a33-577b-4380-8116-a1aa8e5868d3";
    let mut config = common::config();
    config.cors_origins = vec![PAGE.to_owned()];
    config.rooms = vec![(FIXED_ROOM.to_owned(), "lobby2".to_owned())];
    let server = TestServer::start_with(config).await;

    // The preflight a Spring-era page sends before GET /init with its headers.
    let preflight = server
        .request(
            "OPTIONS",
            "/init",
            &[
                ("Origin", PAGE),
                ("Access-Control-Request-Method", "GET"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,ngrok-skip-browser-warning",
                ),
            ],
            None,
        )
        .await;
    assert!(preflight.status < 300, "{}", preflight.status);
    let head = &preflight.head;
    assert!(
        head.contains(&format!("access-control-allow-origin: {PAGE}")),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-credentials: true"),
        "{head}"
    );
    assert!(
        head.contains("authorization,ngrok-skip-browser-warning"),
        "{head}"
    );
    assert!(head.contains("access-control-max-age: 600"), "{head}");

    let allowed = server
        .request("GET", "/init", &[("Origin", PAGE)], None)
        .await;
    assert_eq!(allowed.status, 200);
    assert!(
        allowed
            .head
            .contains(&format!("access-control-allow-origin: {PAGE}"))
    );
    let other = server
        .request("GET", "/init", &[("Origin", "http://evil.example")], None)
        .await;
    assert!(
        !other.head.contains("access-control-allow-origin"),
        "{}",
        other.head
    );

    // The room the page hard-codes exists, with its name.
    let rooms = server.get("/rooms").await;
    let listed = rooms.body["response"].as_array().expect("rooms");
    assert!(
        listed
            .iter()
            .any(|room| room["roomId"] == FIXED_ROOM && room["name"] == "lobby2"),
        "{listed:?}"
    );
    server.stop().await;

    // Without --cors-origin: same origin only.
    let server = TestServer::start().await;
    let plain = server
        .request("GET", "/init", &[("Origin", PAGE)], None)
        .await;
    assert!(!plain.head.contains("access-control-allow-origin"));
    server.stop().await;
}

#[tokio::test]
async fn init_refresh_gives_a_new_token_for_the_same_identity_and_never_a_new_identity() {
    let mut config = common::config();
    // Refreshes do not count as new identities.
    config.tokens_per_hour = 1;
    let server = TestServer::start_with(config).await;
    let token = server.token_for("#ABCDEF");
    let auth = bearer(&token);
    let refreshed = server
        .request(
            "GET",
            "/init?refresh=true",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200);
    assert_envelope(&refreshed.body, true, "SUCCESS_TOKEN_REFRESHED");
    let new = refreshed.body["response"].as_str().expect("token");
    assert_ne!(new, token, "newly issued");
    assert_eq!(claims(new)["sub"], "#ABCDEF");
    assert_eq!(claims(new)["randId"], claims(&token)["randId"]);

    // Every existing answer stays as it was.
    let plain = server
        .request(
            "GET",
            "/init?refresh=false",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_envelope(&plain.body, true, "SUCCESS_TOKEN_VALID");
    assert_eq!(plain.body["response"], token.as_str());

    // No token: nothing to refresh (and no new identity).
    let missing = server.get("/init?refresh=true").await;
    assert_eq!(missing.status, 401);
    assert_envelope(&missing.body, false, "MISSING_TOKEN");
    let forged = server
        .request(
            "GET",
            "/init?refresh=true",
            &[("Authorization", "Bearer garbage")],
            None,
        )
        .await;
    assert_eq!(forged.status, 401);
    assert_envelope(&forged.body, false, "INVALID_TOKEN");
    let bad_flag = server
        .request(
            "GET",
            "/init?refresh=yes",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(bad_flag.status, 400);
    assert_envelope(&bad_flag.body, false, "BAD_REQUEST");

    // Limited per identity, with a Retry-After; another identity is not affected.
    for _ in 1..rtchat_web::REFRESHES_PER_HOUR {
        let again = server
            .request(
                "GET",
                "/init?refresh=true",
                &[("Authorization", &auth)],
                None,
            )
            .await;
        assert_eq!(again.status, 200, "{}", again.body);
    }
    let limited = server
        .request(
            "GET",
            "/init?refresh=true",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_envelope(&limited.body, false, "RATE_LIMITED");
    assert!(limited.head.contains("retry-after: "));
    let other = bearer(&server.token_for("#FEDCBA"));
    let other_refresh = server
        .request(
            "GET",
            "/init?refresh=true",
            &[("Authorization", &other)],
            None,
        )
        .await;
    assert_eq!(other_refresh.status, 200);
    server.stop().await;
}
