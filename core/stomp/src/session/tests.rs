//! The session's behaviour, one scenario per rule of the spec.

use super::*;
use crate::parse::{Limits, Status, parse_frame};

const SECOND: Duration = Duration::from_secs(1);

/// A session on a fake clock, with the client's side written as frame text.
struct Harness {
    session: Session,
    now: Instant,
    /// The key of the latest SUBSCRIBE with each id, as [`Harness::events`] saw them.
    keys: std::collections::HashMap<String, SubscriptionKey>,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }

    fn with_config(config: SessionConfig) -> Self {
        let now = Instant::now();
        Harness {
            session: Session::new(config, now),
            now,
            keys: Default::default(),
        }
    }

    /// A session that negotiated `version` (no heart-beats), with CONNECT and CONNECTED
    /// already drained.
    fn connected(version: &str) -> Self {
        Self::connected_with(version, SessionConfig::default())
    }

    fn connected_with(version: &str, config: SessionConfig) -> Self {
        let mut harness = Self::with_config(config);
        harness.send(&format!("CONNECT\naccept-version:{version}\nhost:h\n\n\0"));
        harness.accept();
        harness.events();
        harness.frames();
        harness
    }

    fn accept(&mut self) {
        assert!(matches!(self.events().as_slice(), [Event::Connect(_)]));
        self.session.accept("s-1", self.now);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Moves the clock to the session's next deadline and fires it.
    fn fire_timeout(&mut self) {
        let deadline = self.session.poll_timeout().expect("a deadline");
        self.now = self.now.max(deadline);
        self.session.handle_timeout(self.now);
    }

    fn send(&mut self, text: &str) {
        self.session.handle_input(text.as_bytes(), self.now);
    }

    /// Every event; remembers the key of each SUBSCRIBE (see [`Harness::key`]).
    fn events(&mut self) -> Vec<Event> {
        let events: Vec<Event> = std::iter::from_fn(|| self.session.poll_event()).collect();
        for event in &events {
            if let Event::Subscribe { key, id, .. } = event {
                self.keys.insert(id.clone(), *key);
            }
        }
        events
    }

    /// The key of the latest SUBSCRIBE with `id`.
    fn key(&self, id: &str) -> SubscriptionKey {
        *self.keys.get(id).expect("a SUBSCRIBE with this id")
    }

    /// Accepts the latest SUBSCRIBE with `id`.
    fn accept_subscription(&mut self, id: &str) {
        assert!(self.session.accept_subscription(self.key(id)));
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.session.poll_transmit()).collect()
    }

    /// Every transmit parsed back, heart-beats included.
    fn items(&mut self) -> Vec<Item> {
        let version = self.session.version().unwrap_or(Version::V1_2);
        self.transmits()
            .into_iter()
            .map(|transmit| {
                let bytes = transmit.into_contiguous();
                match parse_frame(&bytes, version, &Limits::default()) {
                    Ok(Status::Complete((item, used))) => {
                        assert_eq!(used, bytes.len(), "one item per transmit");
                        item
                    }
                    other => panic!("transmit {bytes:?} does not parse: {other:?}"),
                }
            })
            .collect()
    }

    /// Every transmit parsed back; heart-beats are not expected.
    fn frames(&mut self) -> Vec<Frame> {
        self.items()
            .into_iter()
            .map(|item| match item {
                Item::Frame(frame) => frame,
                Item::HeartBeat => panic!("unexpected heart-beat"),
            })
            .collect()
    }

    /// Drains the output and expects exactly one ERROR, which it returns.
    fn error_frame(&mut self) -> Frame {
        let frames = self.frames();
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].command, Command::Error);
        frames[0].clone()
    }

    /// Subscribes (1.1/1.2 style), drains the Subscribe event and accepts it.
    fn subscribe(&mut self, id: &str, ack: &str) -> SubscriptionKey {
        self.send(&format!(
            "SUBSCRIBE\nid:{id}\ndestination:/topic/{id}\nack:{ack}\n\n\0"
        ));
        assert!(matches!(
            self.events().as_slice(),
            [Event::Subscribe { .. }]
        ));
        self.accept_subscription(id);
        self.key(id)
    }

    /// Delivers on the latest subscription with `id`.
    fn deliver(&mut self, subscription: &str, message_id: &str) {
        self.session
            .deliver(self.key(subscription), &message(message_id), self.now)
            .expect("delivered");
    }
}

fn message(id: &str) -> SharedMessage {
    SharedMessage::new(
        "/topic/x",
        id,
        Some("text/plain"),
        &Headers::new(),
        Bytes::from_static(b"hello"),
    )
}

fn closed_by(events: &[Event]) -> Option<&CloseReason> {
    match events.last() {
        Some(Event::Closed(reason)) => Some(reason),
        _ => None,
    }
}

fn protocol_error(events: &[Event]) -> Option<&ProtocolError> {
    match closed_by(events) {
        Some(CloseReason::ProtocolError(error)) => Some(error),
        _ => None,
    }
}

fn acked(events: &[Event]) -> Vec<Vec<String>> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Ack { message_ids, .. } => Some(message_ids.clone()),
            _ => None,
        })
        .collect()
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

// ---- CONNECT and version negotiation ----

#[test]
fn connect_is_handed_to_the_application() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.2\nhost:chat\nlogin:me\nAuthorization:Bearer t\n\n\0");
    let events = h.events();
    let [Event::Connect(request)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(request.version, Version::V1_2);
    assert_eq!(request.host.as_deref(), Some("chat"));
    assert_eq!(request.login.as_deref(), Some("me"));
    assert_eq!(request.passcode, None);
    assert_eq!(request.headers.get("Authorization"), Some("Bearer t"));
    assert_eq!(h.session.state(), State::Authenticating);
    assert!(
        h.frames().is_empty(),
        "nothing is sent before the application answers"
    );
}

#[test]
fn stomp_command_connects_like_connect() {
    let mut h = Harness::new();
    h.send("STOMP\naccept-version:1.1,1.2\nhost:h\n\n\0");
    h.accept();
    assert_eq!(h.frames()[0].command, Command::Connected);
    assert_eq!(h.session.state(), State::Connected);
}

#[test]
fn accept_sends_connected_with_version_heart_beat_session_and_server() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0");
    h.accept();
    let frames = h.frames();
    let connected = &frames[0];
    assert_eq!(connected.command, Command::Connected);
    assert_eq!(connected.get("version"), Some("1.2"));
    assert_eq!(connected.get("heart-beat"), Some("25000,25000"));
    assert_eq!(connected.get("session"), Some("s-1"));
    assert!(connected.get("server").unwrap().starts_with("rtchat/"));
}

#[test]
fn highest_shared_version_is_chosen() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.0,1.1,2.0\n\n\0");
    let events = h.events();
    assert!(matches!(&events[..], [Event::Connect(r)] if r.version == Version::V1_1));
    assert_eq!(h.session.version(), Some(Version::V1_1));
}

#[test]
fn missing_accept_version_means_1_0() {
    let mut h = Harness::new();
    h.send("CONNECT\nlogin:a\n\n\0");
    h.accept();
    assert_eq!(h.session.version(), Some(Version::V1_0));
    assert_eq!(h.frames()[0].get("version"), Some("1.0"));
}

#[test]
fn no_shared_version_is_an_error_listing_ours() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:2.0,3.1\n\n\0");
    let error = h.error_frame();
    assert_eq!(error.get("version"), Some("1.0,1.1,1.2"));
    assert_eq!(
        error.get("message"),
        Some("supported protocol versions are 1.0,1.1,1.2")
    );
    let events = h.events();
    assert!(matches!(
        protocol_error(&events),
        Some(ProtocolError::UnsupportedVersion { .. })
    ));
    assert!(h.session.is_closed());
}

#[test]
fn configured_versions_limit_negotiation() {
    let mut h = Harness::with_config(SessionConfig {
        versions: vec![Version::V1_2],
        ..SessionConfig::default()
    });
    h.send("CONNECT\n\n\0");
    assert_eq!(h.error_frame().get("version"), Some("1.2"));
}

#[test]
fn refuse_sends_error_and_closes() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.2\n\n\0");
    h.events();
    h.session.refuse("invalid token", "The token has expired.");
    let error = h.error_frame();
    assert_eq!(error.get("message"), Some("invalid token"));
    assert_eq!(error.get("content-type"), Some("text/plain"));
    assert_eq!(&error.body[..], b"The token has expired.");
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::Application)]);
    assert!(h.session.is_closed());
}

#[test]
fn frame_before_connect_is_an_error() {
    let mut h = Harness::new();
    h.send("SEND\ndestination:/a\n\nhi\0");
    let error = h.error_frame();
    assert_eq!(error.get("message"), Some("frame received before CONNECT"));
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::NotConnected)
    );
}

#[test]
fn second_connect_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("CONNECT\naccept-version:1.2\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::AlreadyConnected)
    );
}

#[test]
fn frames_pipelined_behind_connect_wait_for_accept() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:0\ndestination:/a\n\n\0");
    assert!(matches!(h.events().as_slice(), [Event::Connect(_)]));
    assert_eq!(h.session.subscription_count(), 0, "not read before accept");
    h.session.accept("s", h.now);
    assert!(matches!(h.events().as_slice(), [Event::Subscribe { id, .. }] if id == "0"));
}

#[test]
fn pipelining_too_much_before_connected_is_an_error() {
    let limits = Limits {
        max_frame_bytes: 64,
        ..Limits::default()
    };
    let mut h = Harness::with_config(SessionConfig {
        limits,
        ..SessionConfig::default()
    });
    h.send("CONNECT\naccept-version:1.2\n\n\0");
    h.events();
    for _ in 0..10 {
        h.send("SEND\ndestination:/a\n\n0123456789\0");
    }
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::TooMuchBeforeConnected)
    );
}

#[test]
fn connect_timeout_says_why_then_closes() {
    let mut h = Harness::new();
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.fire_timeout();
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::ConnectTimeout)]);
    let error = h.error_frame();
    assert_eq!(error.get("message"), Some("connect timeout"));
    assert!(h.session.is_closed());
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn connect_timeout_also_bounds_authentication() {
    let mut h = Harness::new();
    h.advance(5 * SECOND);
    h.send("CONNECT\naccept-version:1.2\n\n\0");
    h.events();
    h.fire_timeout();
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::ConnectTimeout)]);
    h.session.accept("late", h.now);
    let frames = h.frames();
    assert_eq!(frames.len(), 1, "only the ERROR: a late accept is ignored");
    assert_eq!(frames[0].command, Command::Error);
}

// ---- heart-beats ----

fn heart_beat_config(send_every_ms: u64, want_every_ms: u64) -> SessionConfig {
    SessionConfig {
        heart_beat: HeartBeat {
            send_every: Duration::from_millis(send_every_ms),
            want_every: Duration::from_millis(want_every_ms),
        },
        heart_beat_grace: SECOND,
        ..SessionConfig::default()
    }
}

fn connect_with_heart_beat(config: SessionConfig, client: &str) -> Harness {
    let mut h = Harness::with_config(config);
    h.send(&format!(
        "CONNECT\naccept-version:1.2\nheart-beat:{client}\n\n\0"
    ));
    h.accept();
    h.frames();
    h
}

#[test]
fn heart_beats_are_negotiated_as_the_max_of_both_sides() {
    let h = connect_with_heart_beat(heart_beat_config(5000, 4000), "3000,10000");
    // Send: max(server sx 5000, client cy 10000); receive: max(client cx 3000, server sy 4000).
    assert_eq!(
        h.session.heart_beat(),
        Some((Duration::from_secs(10), Duration::from_secs(4)))
    );
}

#[test]
fn heart_beats_are_off_when_either_side_says_zero() {
    let h = connect_with_heart_beat(heart_beat_config(5000, 0), "3000,0");
    assert_eq!(
        h.session.heart_beat(),
        Some((Duration::ZERO, Duration::ZERO))
    );
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn accept_with_adds_the_applications_headers_after_the_specs() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.2\n\n\0");
    h.events();
    let extra: Headers = [("epoch", "e1")].into_iter().collect();
    h.session.accept_with("s-1", &extra, h.now);
    let frames = h.frames();
    assert_eq!(frames[0].command, Command::Connected);
    assert_eq!(frames[0].get("session"), Some("s-1"));
    assert_eq!(frames[0].get("epoch"), Some("e1"));
}

#[test]
fn connected_advertises_the_server_heart_beat() {
    let mut h = Harness::with_config(heart_beat_config(5000, 7000));
    h.send("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0");
    h.accept();
    assert_eq!(h.frames()[0].get("heart-beat"), Some("5000,7000"));
}

#[test]
fn v10_clients_get_no_heart_beats() {
    let mut h = Harness::with_config(heart_beat_config(5000, 5000));
    h.send("CONNECT\nheart-beat:1000,1000\n\n\0");
    h.accept();
    assert_eq!(h.frames()[0].get("heart-beat"), Some("0,0"));
    assert_eq!(
        h.session.heart_beat(),
        Some((Duration::ZERO, Duration::ZERO))
    );
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn malformed_heart_beat_header_is_an_error() {
    let mut h = Harness::new();
    h.send("CONNECT\naccept-version:1.2\nheart-beat:soon\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::InvalidHeader("heart-beat"))
    );
}

#[test]
fn idle_server_sends_heart_beat_eol() {
    let mut h = connect_with_heart_beat(heart_beat_config(5000, 0), "0,5000");
    let connected_at = h.now;
    assert_eq!(h.session.poll_timeout(), Some(connected_at + 5 * SECOND));
    h.fire_timeout();
    let transmits = h.transmits();
    assert_eq!(transmits, vec![Transmit::Bytes(Bytes::from_static(b"\n"))]);
    assert_eq!(h.session.poll_timeout(), Some(connected_at + 10 * SECOND));
}

#[test]
fn any_transmit_postpones_the_heart_beat() {
    let mut h = connect_with_heart_beat(heart_beat_config(5000, 0), "0,5000");
    h.advance(3 * SECOND);
    h.send("SUBSCRIBE\nid:0\ndestination:/a\nreceipt:r\n\n\0");
    h.events();
    h.session.receipt(ReceiptId("r".into()), h.now);
    assert_eq!(h.session.poll_timeout(), Some(h.now + 5 * SECOND));
}

#[test]
fn silent_client_is_closed_after_grace() {
    let mut h = connect_with_heart_beat(heart_beat_config(0, 2000), "2000,0");
    let connected_at = h.now;
    // Interval 2 s plus 1 s grace.
    assert_eq!(h.session.poll_timeout(), Some(connected_at + 3 * SECOND));
    h.advance(2500 * Duration::from_millis(1));
    h.session.handle_timeout(h.now);
    assert!(h.events().is_empty(), "still within grace");
    h.fire_timeout();
    assert_eq!(
        h.events(),
        vec![Event::Closed(CloseReason::HeartBeatTimeout)]
    );
    assert_eq!(h.error_frame().get("message"), Some("heart-beat timeout"));
    assert!(h.session.is_closed());
}

#[test]
fn nothing_follows_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:0\ndestination:/a\nreceipt:r\n\n\0");
    h.events();
    h.session.error("slow consumer", "closing", None, h.now);
    h.session.receipt(ReceiptId("r".into()), h.now);
    let frames = h.frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Error);
}

#[test]
fn grace_follows_the_negotiated_interval_within_its_bounds() {
    // The configured grace is only a ceiling: a 1 s interval gets 1 s more, not 25 s.
    let default_ceiling = |want: u64, client: &str| {
        let config = SessionConfig {
            heart_beat_grace: Duration::from_secs(25),
            ..heart_beat_config(0, want)
        };
        let h = connect_with_heart_beat(config, client);
        h.session.poll_timeout().map(|deadline| deadline - h.now)
    };
    assert_eq!(default_ceiling(1000, "1000,0"), Some(2 * SECOND));
    // A short interval still gets at least a second of tolerance.
    assert_eq!(
        default_ceiling(200, "200,0"),
        Some(Duration::from_millis(1200))
    );
    // A long interval is capped by the configured ceiling.
    assert_eq!(default_ceiling(60_000, "60000,0"), Some(85 * SECOND));
}

#[test]
fn silent_client_with_a_one_second_interval_is_closed_after_two_seconds() {
    let config = SessionConfig {
        heart_beat_grace: Duration::from_secs(25),
        ..heart_beat_config(0, 1000)
    };
    let mut h = connect_with_heart_beat(config, "1000,0");
    h.advance(1900 * Duration::from_millis(1));
    h.session.handle_timeout(h.now);
    assert!(h.events().is_empty(), "within interval plus grace");
    h.advance(100 * Duration::from_millis(1));
    h.session.handle_timeout(h.now);
    assert_eq!(
        h.events(),
        vec![Event::Closed(CloseReason::HeartBeatTimeout)]
    );
}

#[test]
fn any_bytes_keep_the_client_alive() {
    let mut h = connect_with_heart_beat(heart_beat_config(0, 2000), "2000,0");
    h.advance(2 * SECOND);
    h.send("\n");
    h.advance(2 * SECOND);
    h.send("SEN"); // half a frame is life too
    h.advance(2 * SECOND);
    h.session.handle_timeout(h.now);
    assert!(h.events().is_empty());
    assert_eq!(h.session.poll_timeout(), Some(h.now + SECOND));
}

#[test]
fn websocket_ping_counts_as_liveness() {
    let mut h = connect_with_heart_beat(heart_beat_config(0, 2000), "2000,0");
    h.advance(2 * SECOND);
    h.session.handle_liveness(h.now);
    assert_eq!(h.session.poll_timeout(), Some(h.now + 3 * SECOND));
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let h = connect_with_heart_beat(heart_beat_config(4000, 2000), "2000,4000");
    // Send every 4 s; receive deadline 2 s + 1 s grace.
    assert_eq!(h.session.poll_timeout(), Some(h.now + 3 * SECOND));
}

#[test]
fn huge_heart_beat_values_do_not_overflow() {
    let mut h = connect_with_heart_beat(
        heart_beat_config(1, 1),
        "18446744073709551615,18446744073709551615",
    );
    let _ = h.session.poll_timeout();
    h.advance(SECOND);
    h.session.handle_timeout(h.now);
    assert_eq!(h.session.state(), State::Connected);
}

#[test]
fn heart_beat_eols_between_frames_are_ignored() {
    let mut h = Harness::connected("1.2");
    h.send("\n\r\n\nSEND\ndestination:/a\n\n\0\n");
    assert!(matches!(h.events().as_slice(), [Event::Send { .. }]));
}

// ---- SUBSCRIBE and UNSUBSCRIBE ----

#[test]
fn subscribe_is_reported_and_live_once_accepted() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:7\ndestination:/sub/channel/lobby\nack:client\nreceipt:r1\n\n\0");
    let events = h.events();
    let [
        Event::Subscribe {
            key,
            id,
            destination,
            ack,
            headers,
            receipt,
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    let key = *key;
    assert_eq!(key, SubscriptionKey(1), "keys start at 1");
    assert_eq!(id, "7");
    assert_eq!(destination, "/sub/channel/lobby");
    assert_eq!(*ack, AckMode::Client);
    assert_eq!(headers.get("ack"), Some("client"));
    assert_eq!(receipt, &Some(ReceiptId("r1".into())));
    // Held from the SUBSCRIBE on (it counts), but live only once accepted.
    assert_eq!(h.session.subscription_count(), 1);
    assert_eq!(h.session.subscription(key), None);
    assert_eq!(
        h.session.deliver(key, &message("m-0"), h.now),
        Err(DeliverError::UnknownSubscription(key)),
        "nothing is delivered on a subscription the application has not accepted"
    );
    assert!(h.session.accept_subscription(key));
    assert!(!h.session.accept_subscription(key), "answered once");
    assert!(
        !h.session.refuse_subscription(key),
        "an accepted one is not refused"
    );
    assert_eq!(h.session.subscription(key), Some(AckMode::Client));
    assert_eq!(h.session.subscription_count(), 1);
    h.deliver("7", "m-1");
    assert_eq!(h.frames()[0].get("subscription"), Some("7"));
}

#[test]
fn subscribe_without_destination_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:0\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::MissingHeader("destination"))
    );
}

#[test]
fn subscribe_without_id_is_an_error_in_v11() {
    let mut h = Harness::connected("1.1");
    h.send("SUBSCRIBE\ndestination:/a\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::MissingHeader("id"))
    );
}

#[test]
fn subscribe_without_id_uses_the_destination_in_v10() {
    let mut h = Harness::connected("1.0");
    h.send("SUBSCRIBE\ndestination:/a\n\n\0");
    assert!(matches!(h.events().as_slice(), [Event::Subscribe { id, .. }] if id == "/a"));
    h.accept_subscription("/a");
    assert_eq!(h.session.subscription(h.key("/a")), Some(AckMode::Auto));
}

#[test]
fn duplicate_subscription_id_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "auto");
    h.send("SUBSCRIBE\nid:0\ndestination:/b\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::DuplicateSubscription("0".into()))
    );
}

#[test]
fn a_subscription_the_application_refused_frees_its_id() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:0\ndestination:/a\n\n\0");
    h.events();
    let refused = h.key("0");
    assert!(h.session.refuse_subscription(refused));
    assert!(!h.session.refuse_subscription(refused), "answered once");
    assert!(
        !h.session.accept_subscription(refused),
        "a refused one is gone"
    );
    assert_eq!(h.session.subscription(refused), None);
    assert_eq!(h.session.subscription_count(), 0);
    assert_eq!(
        h.session.deliver(refused, &message("m-1"), h.now),
        Err(DeliverError::UnknownSubscription(refused))
    );
    // The same id may be used again, without a protocol error, under a new key.
    let again = h.subscribe("0", "auto");
    assert_ne!(again, refused);
    assert!(h.frames().is_empty());
    assert_eq!(
        h.session.deliver(refused, &message("m-2"), h.now),
        Err(DeliverError::UnknownSubscription(refused)),
        "a delivery for the refused one does not reach the new one"
    );
    assert!(!h.session.refuse_subscription(SubscriptionKey(99)));
}

#[test]
fn a_subscription_awaiting_its_answer_holds_its_id_and_counts_against_the_limit() {
    let mut h = Harness::connected_with(
        "1.2",
        SessionConfig {
            max_subscriptions: 2,
            ..SessionConfig::default()
        },
    );
    h.send("SUBSCRIBE\nid:0\ndestination:/a\n\n\0");
    h.events();
    // Frames after it are read while it awaits its answer.
    h.send("SEND\ndestination:/b\n\n\0SUBSCRIBE\nid:1\ndestination:/b\n\n\0");
    assert!(matches!(
        h.events().as_slice(),
        [Event::Send { .. }, Event::Subscribe { .. }]
    ));
    assert_eq!(h.session.subscription_count(), 2);
    h.send("SUBSCRIBE\nid:2\ndestination:/c\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::TooManySubscriptions)
    );

    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:0\ndestination:/a\n\n\0");
    h.events();
    h.send("SUBSCRIBE\nid:0\ndestination:/b\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::DuplicateSubscription("0".into()))
    );
}

#[test]
fn an_unsubscribe_before_the_answer_ends_the_subscription_and_the_answer_is_ignored() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:0\ndestination:/a\n\n\0");
    h.events();
    let key = h.key("0");
    h.send("UNSUBSCRIBE\nid:0\nreceipt:u\n\n\0");
    assert_eq!(
        h.events(),
        vec![Event::Unsubscribe {
            key,
            id: "0".into(),
            destination: "/a".into(),
            receipt: Some(ReceiptId("u".into())),
        }]
    );
    assert!(!h.session.accept_subscription(key));
    assert!(!h.session.refuse_subscription(key));
    assert_eq!(h.session.subscription_count(), 0);
    assert_eq!(
        h.session.deliver(key, &message("m"), h.now),
        Err(DeliverError::UnknownSubscription(key))
    );
    assert!(h.frames().is_empty());
}

#[test]
fn v10_unsubscribe_by_destination_reaches_a_subscription_awaiting_its_answer() {
    let mut h = Harness::connected("1.0");
    h.send("SUBSCRIBE\ndestination:/a\n\n\0SUBSCRIBE\nid:second\ndestination:/a\n\n\0");
    h.events();
    h.events();
    h.accept_subscription("second");
    // The oldest subscription to the destination goes, accepted or not.
    h.send("UNSUBSCRIBE\ndestination:/a\n\n\0");
    let first = h.key("/a");
    assert!(matches!(
        h.events().as_slice(),
        [Event::Unsubscribe { key, id, .. }] if *key == first && id == "/a"
    ));
    h.send("UNSUBSCRIBE\ndestination:/a\n\n\0");
    assert!(matches!(h.events().as_slice(), [Event::Unsubscribe { id, .. }] if id == "second"));
}

#[test]
fn a_delivery_for_an_ended_subscription_never_reaches_a_later_one_with_its_id() {
    let mut h = Harness::connected("1.2");
    let old = h.subscribe("0", "auto");
    h.send("UNSUBSCRIBE\nid:0\n\n\0");
    h.events();
    let new = h.subscribe("0", "auto");
    assert!(new > old, "keys are never reused");
    assert_eq!(
        h.session.deliver(old, &message("stale"), h.now),
        Err(DeliverError::UnknownSubscription(old))
    );
    h.deliver("0", "fresh");
    let frames = h.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].get("message-id"), Some("fresh"));
    let transmits = {
        h.deliver("0", "again");
        h.transmits()
    };
    assert!(matches!(
        transmits.as_slice(),
        [Transmit::Message { subscription, .. }] if *subscription == new
    ));
}

#[test]
fn unknown_ack_mode_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nid:0\ndestination:/a\nack:sometimes\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::InvalidHeader("ack"))
    );
}

#[test]
fn client_individual_is_not_a_v10_ack_mode() {
    let mut h = Harness::connected("1.0");
    h.send("SUBSCRIBE\ndestination:/a\nack:client-individual\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::InvalidHeader("ack"))
    );
}

#[test]
fn subscription_limit_is_enforced() {
    let mut h = Harness::connected_with(
        "1.2",
        SessionConfig {
            max_subscriptions: 2,
            ..SessionConfig::default()
        },
    );
    h.subscribe("0", "auto");
    h.subscribe("1", "auto");
    h.send("SUBSCRIBE\nid:2\ndestination:/a\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::TooManySubscriptions)
    );
}

#[test]
fn unsubscribe_forgets_the_subscription_and_reports_its_destination() {
    let mut h = Harness::connected("1.2");
    let key = h.subscribe("0", "auto");
    h.send("UNSUBSCRIBE\nid:0\nreceipt:u\n\n\0");
    assert_eq!(
        h.events(),
        vec![Event::Unsubscribe {
            key,
            id: "0".into(),
            destination: "/topic/0".into(),
            receipt: Some(ReceiptId("u".into())),
        }]
    );
    assert_eq!(h.session.subscription(key), None);
    assert_eq!(
        h.session.deliver(key, &message("m"), h.now),
        Err(DeliverError::UnknownSubscription(key))
    );
}

#[test]
fn unsubscribe_of_unknown_id_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("UNSUBSCRIBE\nid:9\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownSubscription("9".into()))
    );
}

#[test]
fn unsubscribe_without_id_is_an_error_in_v12() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "auto");
    h.send("UNSUBSCRIBE\ndestination:/topic/0\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::MissingHeader("id"))
    );
}

#[test]
fn v10_may_unsubscribe_by_destination() {
    let mut h = Harness::connected("1.0");
    h.send("SUBSCRIBE\nid:s\ndestination:/a\n\n\0");
    h.events();
    h.accept_subscription("s");
    h.send("UNSUBSCRIBE\ndestination:/a\n\n\0");
    assert!(matches!(h.events().as_slice(), [Event::Unsubscribe { id, .. }] if id == "s"));
}

// ---- delivery and acknowledgement ----

#[test]
fn an_unsubscribe_ends_the_subscriptions_key_after_its_last_message() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "auto");
    h.subscribe("1", "auto");
    let first = h.key("0");
    h.session.deliver(first, &message("m-1"), h.now).unwrap();
    let key = match h.transmits().as_slice() {
        [Transmit::Message { subscription, .. }] => *subscription,
        other => panic!("{other:?}"),
    };
    assert_eq!(h.session.poll_ended_subscription(), None);
    h.send("UNSUBSCRIBE\nid:0\n\n\0");
    let _ = h.events();
    assert_eq!(h.session.poll_ended_subscription(), Some(key));
    assert_eq!(h.session.poll_ended_subscription(), None);
    // The same id subscribed again is a new subscription with a new key.
    h.subscribe("0", "auto");
    let again = h.key("0");
    assert_ne!(again, first);
    h.session.deliver(again, &message("m-2"), h.now).unwrap();
    match h.transmits().as_slice() {
        [Transmit::Message { subscription, .. }] => assert_ne!(*subscription, key),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deliver_before_connected_fails() {
    let mut h = Harness::new();
    assert_eq!(
        h.session.deliver(SubscriptionKey(1), &message("m"), h.now),
        Err(DeliverError::NotConnected)
    );
}

#[test]
fn deliver_to_unknown_subscription_fails() {
    let mut h = Harness::connected("1.2");
    assert_eq!(
        h.session.deliver(SubscriptionKey(1), &message("m"), h.now),
        Err(DeliverError::UnknownSubscription(SubscriptionKey(1)))
    );
}

#[test]
fn deliver_shares_the_tail_without_copying() {
    let mut h = Harness::connected("1.2");
    let key = h.subscribe("0", "auto");
    let shared = message("m-1");
    h.session.deliver(key, &shared, h.now).unwrap();
    let transmits = h.transmits();
    let [Transmit::Message { tail, .. }] = transmits.as_slice() else {
        panic!("{transmits:?}")
    };
    assert_eq!(tail.as_ptr(), shared.tail(Version::V1_2).as_ptr());
}

#[test]
fn delivered_message_names_its_subscription() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "auto");
    h.deliver("0", "m-1");
    let frames = h.frames();
    assert_eq!(frames[0].command, Command::Message);
    assert_eq!(frames[0].get("subscription"), Some("0"));
    assert_eq!(frames[0].get("message-id"), Some("m-1"));
    assert_eq!(frames[0].get("ack"), None, "auto mode needs no ack");
    assert_eq!(&frames[0].body[..], b"hello");
}

#[test]
fn v12_client_messages_carry_a_unique_ack_header() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client");
    h.subscribe("1", "client-individual");
    h.deliver("0", "m-1");
    h.deliver("1", "m-1");
    let frames = h.frames();
    let first = frames[0].get("ack").expect("ack header");
    let second = frames[1].get("ack").expect("ack header");
    assert_ne!(first, second);
}

#[test]
fn v11_messages_carry_no_ack_header() {
    let mut h = Harness::connected("1.1");
    h.subscribe("0", "client");
    h.deliver("0", "m-1");
    assert_eq!(h.frames()[0].get("ack"), None);
}

fn ack_ids(h: &mut Harness) -> Vec<String> {
    h.frames()
        .iter()
        .map(|f| f.get("ack").expect("ack header").to_owned())
        .collect()
}

#[test]
fn client_ack_is_cumulative() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client");
    for id in ["m-1", "m-2", "m-3"] {
        h.deliver("0", id);
    }
    let acks = ack_ids(&mut h);
    h.send(&format!("ACK\nid:{}\nreceipt:a\n\n\0", acks[1]));
    assert_eq!(
        h.events(),
        vec![Event::Ack {
            subscription: "0".into(),
            message_ids: ids(&["m-1", "m-2"]),
            receipt: Some(ReceiptId("a".into())),
        }]
    );
    h.send(&format!("ACK\nid:{}\n\n\0", acks[0]));
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownAck(acks[0].clone())),
        "already acknowledged by the cumulative ACK"
    );
}

#[test]
fn client_individual_ack_is_one_message() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client-individual");
    for id in ["m-1", "m-2", "m-3"] {
        h.deliver("0", id);
    }
    let acks = ack_ids(&mut h);
    h.send(&format!("ACK\nid:{}\n\n\0", acks[1]));
    h.send(&format!("ACK\nid:{}\n\n\0", acks[0]));
    assert_eq!(acked(&h.events()), vec![ids(&["m-2"]), ids(&["m-1"])]);
}

#[test]
fn nack_reports_the_refused_message() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client-individual");
    h.deliver("0", "m-1");
    let acks = ack_ids(&mut h);
    h.send(&format!("NACK\nid:{}\n\n\0", acks[0]));
    assert_eq!(
        h.events(),
        vec![Event::Nack {
            subscription: "0".into(),
            message_ids: ids(&["m-1"]),
            receipt: None,
        }]
    );
}

#[test]
fn ack_of_unknown_id_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client");
    h.send("ACK\nid:42\nreceipt:r\n\n\0");
    let error = h.error_frame();
    assert_eq!(error.get("receipt-id"), Some("r"));
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownAck("42".into()))
    );
}

#[test]
fn auto_mode_messages_cannot_be_acked() {
    let mut h = Harness::connected("1.1");
    h.subscribe("0", "auto");
    h.deliver("0", "m-1");
    h.frames();
    h.send("ACK\nsubscription:0\nmessage-id:m-1\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownAck("m-1".into()))
    );
}

#[test]
fn v11_ack_names_message_id_and_subscription() {
    let mut h = Harness::connected("1.1");
    h.subscribe("0", "client-individual");
    h.subscribe("1", "client-individual");
    h.deliver("0", "m-1");
    h.deliver("1", "m-1");
    h.send("ACK\nsubscription:1\nmessage-id:m-1\n\n\0");
    assert_eq!(
        h.events(),
        vec![Event::Ack {
            subscription: "1".into(),
            message_ids: ids(&["m-1"]),
            receipt: None,
        }]
    );
}

#[test]
fn v11_ack_without_subscription_is_an_error() {
    let mut h = Harness::connected("1.1");
    h.subscribe("0", "client");
    h.deliver("0", "m-1");
    h.send("ACK\nmessage-id:m-1\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::MissingHeader("subscription"))
    );
}

#[test]
fn v10_ack_names_only_the_message_id() {
    let mut h = Harness::connected("1.0");
    h.send("SUBSCRIBE\ndestination:/a\nack:client\n\n\0");
    h.events();
    h.accept_subscription("/a");
    h.deliver("/a", "m-1");
    h.deliver("/a", "m-2");
    h.send("ACK\nmessage-id:m-2\n\n\0");
    assert_eq!(acked(&h.events()), vec![ids(&["m-1", "m-2"])]);
}

#[test]
fn unacked_bound_refuses_further_deliveries() {
    let mut h = Harness::connected_with(
        "1.2",
        SessionConfig {
            max_unacked_per_subscription: 2,
            ..SessionConfig::default()
        },
    );
    let key = h.subscribe("0", "client");
    h.deliver("0", "m-1");
    h.deliver("0", "m-2");
    assert_eq!(
        h.session.deliver(key, &message("m-3"), h.now),
        Err(DeliverError::TooManyUnacked(key))
    );
    let acks = ack_ids(&mut h);
    h.send(&format!("ACK\nid:{}\n\n\0", acks[1]));
    h.deliver("0", "m-3");
}

#[test]
fn unsubscribe_forgets_pending_acks() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client");
    h.deliver("0", "m-1");
    let acks = ack_ids(&mut h);
    h.send("UNSUBSCRIBE\nid:0\n\n\0");
    h.events();
    h.subscribe("0", "client");
    h.send(&format!("ACK\nid:{}\n\n\0", acks[0]));
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownAck(acks[0].clone()))
    );
}

// ---- SEND and receipts ----

#[test]
fn send_is_handed_over_with_its_body_and_receipt() {
    let mut h = Harness::connected("1.2");
    h.send("SEND\ndestination:/pub/chat\ncontent-type:application/json\nreceipt:s-1\n\n{}\0");
    let events = h.events();
    let [
        Event::Send {
            destination,
            headers,
            body,
            receipt,
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(destination, "/pub/chat");
    assert_eq!(headers.get("content-type"), Some("application/json"));
    assert_eq!(&body[..], b"{}");
    assert_eq!(receipt, &Some(ReceiptId("s-1".into())));
}

#[test]
fn send_without_destination_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("SEND\n\nhi\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::MissingHeader("destination"))
    );
}

#[test]
fn receipts_are_left_to_the_application() {
    let mut h = Harness::connected("1.2");
    h.send("SEND\ndestination:/a\nreceipt:s-1\n\n\0");
    h.events();
    assert!(
        h.frames().is_empty(),
        "the chat answers once it stored the message"
    );
    h.session.receipt(ReceiptId("s-1".into()), h.now);
    let frames = h.frames();
    assert_eq!(frames[0].command, Command::Receipt);
    assert_eq!(frames[0].get("receipt-id"), Some("s-1"));
}

// ---- transactions ----

#[test]
fn transaction_sends_are_released_on_commit_in_order() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\ntransaction:t\n\n\0");
    h.send("SEND\ndestination:/a\ntransaction:t\n\none\0");
    h.send("SEND\ndestination:/a\n\noutside\0");
    h.send("SEND\ndestination:/a\ntransaction:t\n\ntwo\0");
    let outside = h.events();
    assert_eq!(outside.len(), 1, "only the SEND outside the transaction");
    h.send("COMMIT\ntransaction:t\nreceipt:c\n\n\0");
    let events = h.events();
    let bodies: Vec<&[u8]> = events
        .iter()
        .filter_map(|event| match event {
            Event::Send { body, .. } => Some(&body[..]),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, vec![&b"one"[..], &b"two"[..]]);
    assert_eq!(
        events.last(),
        Some(&Event::Commit {
            transaction: "t".into(),
            receipt: Some(ReceiptId("c".into())),
        })
    );
    assert!(
        h.frames().is_empty(),
        "the COMMIT receipt is the application's"
    );
}

#[test]
fn aborted_transaction_drops_its_frames() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/a\ntransaction:t\n\nx\0");
    h.send("ABORT\ntransaction:t\n\n\0");
    assert!(h.events().is_empty());
    h.send("COMMIT\ntransaction:t\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownTransaction("t".into()))
    );
}

#[test]
fn acks_in_an_aborted_transaction_leave_messages_pending() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client");
    h.deliver("0", "m-1");
    let acks = ack_ids(&mut h);
    h.send(&format!(
        "BEGIN\ntransaction:t\n\n\0ACK\nid:{}\ntransaction:t\n\n\0ABORT\ntransaction:t\n\n\0",
        acks[0]
    ));
    assert!(h.events().is_empty());
    h.send(&format!("ACK\nid:{}\n\n\0", acks[0]));
    assert_eq!(acked(&h.events()), vec![ids(&["m-1"])]);
}

#[test]
fn acks_in_a_transaction_apply_on_commit() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "client-individual");
    h.deliver("0", "m-1");
    let acks = ack_ids(&mut h);
    h.send(&format!(
        "BEGIN\ntransaction:t\n\n\0ACK\nid:{}\ntransaction:t\n\n\0",
        acks[0]
    ));
    assert!(h.events().is_empty());
    h.send("COMMIT\ntransaction:t\n\n\0");
    let events = h.events();
    assert_eq!(acked(&events), vec![ids(&["m-1"])]);
    assert!(matches!(events.last(), Some(Event::Commit { .. })));
}

#[test]
fn duplicate_transaction_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\n\n\0");
    h.error_frame();
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::DuplicateTransaction("t".into()))
    );
}

#[test]
fn send_in_unknown_transaction_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("SEND\ndestination:/a\ntransaction:nope\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::UnknownTransaction("nope".into()))
    );
}

#[test]
fn begin_without_transaction_header_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::MissingHeader("transaction"))
    );
}

#[test]
fn open_transactions_are_bounded() {
    let mut h = Harness::connected_with(
        "1.2",
        SessionConfig {
            max_transactions: 1,
            ..SessionConfig::default()
        },
    );
    h.send("BEGIN\ntransaction:a\n\n\0BEGIN\ntransaction:b\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::TooManyTransactions)
    );
}

#[test]
fn frames_per_transaction_are_bounded() {
    let mut h = Harness::connected_with(
        "1.2",
        SessionConfig {
            max_frames_per_transaction: 1,
            ..SessionConfig::default()
        },
    );
    h.send("BEGIN\ntransaction:t\n\n\0");
    h.send("SEND\ndestination:/a\ntransaction:t\n\n\0");
    h.send("SEND\ndestination:/a\ntransaction:t\n\n\0");
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::TransactionTooLarge)
    );
}

#[test]
fn begin_and_abort_receipts_are_sent_by_the_engine() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\ntransaction:t\nreceipt:b\n\n\0ABORT\ntransaction:t\nreceipt:a\n\n\0");
    let receipts: Vec<_> = h
        .frames()
        .iter()
        .map(|f| f.get("receipt-id").unwrap().to_owned())
        .collect();
    assert_eq!(receipts, ids(&["b", "a"]));
}

#[test]
fn frames_joining_a_transaction_are_receipted_at_once() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/a\ntransaction:t\nreceipt:s\n\n\0");
    assert_eq!(h.frames()[0].get("receipt-id"), Some("s"));
    h.send("COMMIT\ntransaction:t\n\n\0");
    let events = h.events();
    assert!(
        matches!(&events[0], Event::Send { receipt: None, .. }),
        "not owed twice"
    );
}

// ---- DISCONNECT, errors and closing ----

#[test]
fn a_client_sending_frames_faster_than_allowed_is_closed() {
    let config = SessionConfig {
        max_frames_per_second: 5,
        ..SessionConfig::default()
    };
    let mut h = Harness::connected_with("1.2", config);
    // CONNECT spent one frame of the burst of five: four more pass, with heart-beats free.
    for n in 0..4 {
        h.send(&format!("\n\nBEGIN\ntransaction:t{n}\n\n\0"));
    }
    assert!(h.frames().is_empty());
    h.advance(Duration::from_millis(200));
    h.send("ABORT\ntransaction:t0\n\n\0");
    assert!(
        h.frames().is_empty(),
        "a fifth of a second refills one frame"
    );
    h.send("ABORT\ntransaction:t1\nreceipt:r\n\n\0");
    let error = h.error_frame();
    assert_eq!(
        error.get("message"),
        Some("too many frames: at most 5 per second")
    );
    assert_eq!(error.get("receipt-id"), Some("r"));
    assert_eq!(
        protocol_error(&h.events()),
        Some(&ProtocolError::TooManyFrames { per_second: 5 })
    );
}

#[test]
fn receipt_on_disconnect_then_close() {
    let mut h = Harness::connected("1.2");
    h.send("DISCONNECT\nreceipt:77\n\n\0");
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::Disconnect)]);
    assert_eq!(h.session.state(), State::Closing);
    assert!(!h.session.is_closed(), "the RECEIPT is still to be written");
    let frames = h.frames();
    assert_eq!(frames[0].command, Command::Receipt);
    assert_eq!(frames[0].get("receipt-id"), Some("77"));
    assert!(h.session.is_closed());
}

#[test]
fn a_deferred_disconnect_waits_for_the_application_then_receipts_last() {
    let config = SessionConfig {
        defer_disconnect: true,
        ..SessionConfig::default()
    };
    let mut h = Harness::connected_with("1.2", config);
    h.send("SEND\ndestination:/a\nreceipt:s\n\n\0DISCONNECT\nreceipt:d\n\n\0SEND\ndestination:/a\n\nafter\0");
    let events = h.events();
    assert!(matches!(&events[0], Event::Send { receipt: Some(r), .. } if r.0 == "s"));
    assert_eq!(
        events[1],
        Event::Disconnect {
            receipt: Some(ReceiptId("d".into()))
        }
    );
    assert_eq!(events.len(), 2, "nothing after DISCONNECT is read");
    assert_eq!(h.session.state(), State::Connected);
    // The application answers the SEND, then lets the DISCONNECT finish.
    h.session.receipt(ReceiptId("s".into()), h.now);
    h.session.disconnect();
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::Disconnect)]);
    let receipts: Vec<_> = h
        .frames()
        .iter()
        .filter_map(|f| f.get("receipt-id").map(str::to_owned))
        .collect();
    assert_eq!(receipts, ["s", "d"], "the DISCONNECT's RECEIPT comes last");
    assert!(h.session.is_closed());
}

#[test]
fn disconnect_without_receipt_closes_at_once() {
    let mut h = Harness::connected("1.2");
    h.send("DISCONNECT\n\n\0");
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::Disconnect)]);
    assert!(h.session.is_closed());
}

#[test]
fn disconnect_aborts_open_transactions() {
    let mut h = Harness::connected("1.2");
    h.send("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/a\ntransaction:t\n\nx\0DISCONNECT\n\n\0");
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::Disconnect)]);
}

#[test]
fn receipts_for_frames_before_disconnect_still_go_out() {
    let mut h = Harness::connected("1.2");
    h.send("SEND\ndestination:/a\nreceipt:s\n\n\0DISCONNECT\nreceipt:d\n\n\0");
    for event in h.events() {
        if let Event::Send {
            receipt: Some(receipt),
            ..
        } = event
        {
            h.session.receipt(receipt, h.now);
        }
    }
    let receipts: Vec<_> = h
        .frames()
        .iter()
        .map(|f| f.get("receipt-id").unwrap().to_owned())
        .collect();
    assert_eq!(receipts, ids(&["d", "s"]));
}

#[test]
fn protocol_error_sends_error_with_text_and_receipt_id() {
    let mut h = Harness::connected("1.2");
    h.send("SUBSCRIBE\nreceipt:r-9\ndestination:/a\n\n\0");
    let error = h.error_frame();
    assert_eq!(error.get("message"), Some("missing required header 'id'"));
    assert_eq!(error.get("receipt-id"), Some("r-9"));
    assert_eq!(error.get("content-type"), Some("text/plain"));
    assert!(!error.body.is_empty());
    assert!(h.session.is_closed());
}

#[test]
fn malformed_input_is_an_error() {
    let mut h = Harness::connected("1.2");
    h.send("HELLO\n\n\0");
    let error = h.error_frame();
    assert!(error.get("message").unwrap().starts_with("malformed frame"));
    assert!(matches!(
        protocol_error(&h.events()),
        Some(ProtocolError::Malformed(_))
    ));
}

#[test]
fn server_frames_from_the_client_are_rejected() {
    for command in [
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ] {
        let mut h = Harness::connected("1.2");
        h.send(&format!("{command}\n\n\0"));
        assert_eq!(
            protocol_error(&h.events()),
            Some(&ProtocolError::UnexpectedCommand {
                command: command.as_str()
            })
        );
    }
}

#[test]
fn valid_frames_before_a_bad_one_are_still_handed_over() {
    let mut h = Harness::connected("1.2");
    h.send("SEND\ndestination:/a\n\n\0UNSUBSCRIBE\nid:x\n\n\0SEND\ndestination:/b\n\n\0");
    let events = h.events();
    assert!(matches!(events[0], Event::Send { .. }));
    assert!(matches!(
        events[1],
        Event::Closed(CloseReason::ProtocolError(_))
    ));
    assert_eq!(events.len(), 2, "nothing is read after the error");
}

#[test]
fn input_after_close_is_ignored() {
    let mut h = Harness::connected("1.2");
    h.session.close();
    h.events();
    h.send("SEND\ndestination:/a\n\n\0");
    assert!(h.events().is_empty());
    assert!(h.transmits().is_empty());
}

#[test]
fn closed_is_emitted_exactly_once_whatever_the_path() {
    let mut h = Harness::connected("1.2");
    h.send("BOGUS\n\n\0");
    h.session.close();
    h.session.error("late", "", None, h.now);
    h.session.handle_transport_closed();
    h.fire_timeout_if_any();
    let closed = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Closed(_)))
        .count();
    assert_eq!(closed, 1);
}

impl Harness {
    fn fire_timeout_if_any(&mut self) {
        if self.session.poll_timeout().is_some() {
            self.fire_timeout();
        }
    }
}

#[test]
fn transport_closed_drops_queued_transmits() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "auto");
    h.deliver("0", "m-1");
    h.session.handle_transport_closed();
    assert_eq!(
        h.events(),
        vec![Event::Closed(CloseReason::TransportClosed)]
    );
    assert!(h.transmits().is_empty());
    assert!(h.session.is_closed());
}

#[test]
fn application_error_sends_error_and_closes() {
    let mut h = Harness::connected("1.2");
    h.session.error(
        "slow consumer",
        "You are too slow.",
        Some(ReceiptId("x".into())),
        h.now,
    );
    let error = h.error_frame();
    assert_eq!(error.get("message"), Some("slow consumer"));
    assert_eq!(error.get("receipt-id"), Some("x"));
    assert_eq!(h.events(), vec![Event::Closed(CloseReason::Application)]);
    assert!(h.session.is_closed());
}

#[test]
fn close_keeps_queued_frames_until_drained() {
    let mut h = Harness::connected("1.2");
    h.subscribe("0", "auto");
    h.deliver("0", "m-1");
    h.session.close();
    assert_eq!(h.session.state(), State::Closing);
    assert_eq!(
        h.session.deliver(h.key("0"), &message("m-2"), h.now),
        Err(DeliverError::NotConnected)
    );
    assert_eq!(h.frames().len(), 1);
    assert!(h.session.is_closed());
    assert_eq!(h.session.poll_timeout(), None);
}
