//! Properties of the session that must hold for any input: it never panics, it closes at
//! most once, and how the peer's bytes are chunked never changes what it does.

use bytes::Bytes;
use proptest::prelude::*;
use rtchat_stomp::{Event, Headers, Session, SessionConfig, SharedMessage};
use std::time::{Duration, Instant};

/// What one run produced: the events (as the application saw them) and every transmitted byte.
#[derive(Debug, Default, PartialEq, Eq)]
struct Run {
    events: Vec<String>,
    transmits: Vec<Bytes>,
}

/// Plays a small application: accepts every CONNECT and every SUBSCRIBE, and delivers two
/// messages on every new subscription; then drains transmits. It answers no receipts: where the application's
/// RECEIPTs fall among the engine's frames depends on when it runs, not on the engine.
fn drive(session: &mut Session, now: Instant, run: &mut Run) {
    while let Some(event) = session.poll_event() {
        run.events.push(format!("{event:?}"));
        match event {
            Event::Connect(_) => session.accept("s-1", now),
            Event::Subscribe { key, id, .. } => {
                session.accept_subscription(key);
                for n in 0..2 {
                    let message = SharedMessage::new(
                        "/t",
                        &format!("m-{id}-{n}"),
                        Some("text/plain"),
                        &Headers::new(),
                        Bytes::from_static(b"body"),
                    );
                    let _ = session.deliver(key, &message, now);
                }
            }
            _ => {}
        }
    }
    while let Some(transmit) = session.poll_transmit() {
        run.transmits.push(transmit.into_contiguous());
    }
}

/// Feeds each phase cut at `cuts`, driving the session after each chunk. The application
/// reacts between chunks, so a phase ends where its reactions must have happened (deliveries
/// the next phase ACKs).
fn play(phases: &[&[u8]], cuts: &[usize]) -> Run {
    let start = Instant::now();
    let mut session = Session::new(SessionConfig::default(), start);
    let mut run = Run::default();
    let mut step = 0u64;
    for input in phases {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(input.len());
        let mut from = 0;
        for to in cuts {
            step += 1;
            let now = start + Duration::from_millis(step);
            session.handle_input(&input[from..to], now);
            drive(&mut session, now, &mut run);
            from = to;
        }
    }
    run
}

fn closed_count(run: &Run) -> usize {
    run.events
        .iter()
        .filter(|e| e.starts_with("Closed"))
        .count()
}

/// A frame a well-behaved 1.1 client might send.
fn frame(command: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut text = format!("{command}\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}:{value}\n"));
    }
    text.push('\n');
    text.push_str(body);
    text.push('\0');
    text
}

#[derive(Debug, Clone)]
enum Step {
    Send { body: String, receipt: bool },
    Ack { subscription: usize, message: usize },
    Transaction { sends: Vec<String> },
    HeartBeat,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        ("[a-z ]{0,20}", any::<bool>()).prop_map(|(body, receipt)| Step::Send { body, receipt }),
        (0..4usize, 0..2usize).prop_map(|(subscription, message)| Step::Ack {
            subscription,
            message
        }),
        prop::collection::vec("[a-z]{0,8}", 0..3).prop_map(|sends| Step::Transaction { sends }),
        Just(Step::HeartBeat),
    ]
}

fn ack_mode() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("auto"), Just("client"), Just("client-individual")]
}

/// A client script in two phases: CONNECT and SUBSCRIBEs (after which the application has
/// delivered two messages per subscription), then the steps and DISCONNECT. ACKs may name
/// messages that were never delivered or were already acknowledged; that ends the session
/// with an ERROR, which must happen identically however the bytes are split.
fn script(subscriptions: &[&str], steps: &[Step]) -> (Vec<u8>, Vec<u8>) {
    let mut text = frame(
        "CONNECT",
        &[
            ("accept-version", "1.1".into()),
            ("host", "h".into()),
            ("heart-beat", "0,0".into()),
        ],
        "",
    );
    for (n, ack) in subscriptions.iter().enumerate() {
        text.push_str(&frame(
            "SUBSCRIBE",
            &[
                ("id", format!("s{n}")),
                ("destination", format!("/t/{n}")),
                ("ack", (*ack).into()),
                ("receipt", format!("sub{n}")),
            ],
            "",
        ));
    }
    let connect = std::mem::take(&mut text).into_bytes();
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Send { body, receipt } => {
                let mut headers = vec![("destination", "/pub/chat".to_owned())];
                if *receipt {
                    headers.push(("receipt", format!("r{n}")));
                }
                text.push_str(&frame("SEND", &headers, body));
            }
            Step::Ack {
                subscription,
                message,
            } => text.push_str(&frame(
                "ACK",
                &[
                    ("subscription", format!("s{subscription}")),
                    ("message-id", format!("m-s{subscription}-{message}")),
                ],
                "",
            )),
            Step::Transaction { sends } => {
                let transaction = format!("t{n}");
                text.push_str(&frame("BEGIN", &[("transaction", transaction.clone())], ""));
                for body in sends {
                    text.push_str(&frame(
                        "SEND",
                        &[
                            ("destination", "/pub/chat".into()),
                            ("transaction", transaction.clone()),
                        ],
                        body,
                    ));
                }
                text.push_str(&frame(
                    "COMMIT",
                    &[("transaction", transaction), ("receipt", format!("c{n}"))],
                    "",
                ));
            }
            Step::HeartBeat => text.push('\n'),
        }
    }
    text.push_str(&frame("DISCONNECT", &[("receipt", "bye".into())], ""));
    (connect, text.into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_in_any_chunking_never_panic_and_close_at_most_once(
        prefix_connect in any::<bool>(),
        noise in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        timeout_after in prop::option::of(0u64..60_000),
    ) {
        let mut input = Vec::new();
        if prefix_connect {
            input.extend_from_slice(b"CONNECT\naccept-version:1.0,1.1,1.2\nheart-beat:1,1\n\n\0");
        }
        input.extend_from_slice(&noise);
        let mut run = play(&[&input], &cuts);
        prop_assert!(closed_count(&run) <= 1, "{:?}", run.events);
        if let Some(closed_at) = run.events.iter().position(|e| e.starts_with("Closed")) {
            prop_assert_eq!(closed_at, run.events.len() - 1, "no event after Closed");
        }
        // Timers and transport loss after arbitrary input must not panic or close twice.
        let start = Instant::now();
        let mut session = Session::new(SessionConfig::default(), start);
        session.handle_input(&input, start);
        drive(&mut session, start, &mut run);
        if let Some(after) = timeout_after {
            session.handle_timeout(start + Duration::from_millis(after));
        }
        session.handle_transport_closed();
        let closes = std::iter::from_fn(|| session.poll_event())
            .filter(|e| matches!(e, Event::Closed(_)))
            .count();
        prop_assert!(closes <= 1);
        prop_assert!(session.is_closed());
    }

    #[test]
    fn chunking_never_changes_events_or_transmits(
        subscriptions in prop::collection::vec(ack_mode(), 0..4),
        steps in prop::collection::vec(step(), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 1..24),
    ) {
        let (connect, rest) = script(&subscriptions, &steps);
        let whole = play(&[&connect, &rest], &[]);
        let split = play(&[&connect, &rest], &cuts);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(closed_count(&whole), 1, "{:?}", whole.events);
        prop_assert!(whole.events[0].starts_with("Connect"));
    }

    #[test]
    fn byte_at_a_time_equals_whole(
        subscriptions in prop::collection::vec(ack_mode(), 0..3),
        steps in prop::collection::vec(step(), 0..6),
    ) {
        let (connect, rest) = script(&subscriptions, &steps);
        // Cuts are taken modulo each phase's length, so this cuts everywhere in both.
        let every_byte: Vec<usize> = (0..connect.len().max(rest.len())).collect();
        prop_assert_eq!(
            play(&[&connect, &rest], &[]),
            play(&[&connect, &rest], &every_byte)
        );
    }
}

#[test]
fn a_clean_script_ends_with_the_disconnect_receipt() {
    let (connect, rest) = script(
        &["client"],
        &[
            Step::Send {
                body: "hi".into(),
                receipt: true,
            },
            Step::Ack {
                subscription: 0,
                message: 1,
            },
            Step::Transaction {
                sends: vec!["a".into(), "b".into()],
            },
        ],
    );
    let run = play(&[&connect, &rest], &[]);
    assert_eq!(
        run.events.last().map(String::as_str),
        Some("Closed(Disconnect)")
    );
    let last = run.transmits.last().expect("transmits");
    assert!(last.starts_with(b"RECEIPT\n"), "{last:?}");
    assert!(
        run.transmits.iter().all(|t| !t.starts_with(b"ERROR")),
        "{:?}",
        run.transmits
    );
}

/// Plays an application that decides each SUBSCRIBE as it comes (refuses every third, as a
/// rate limit would, and accepts the others and answers their receipts at once) over `input` cut at `cuts`;
/// returns every byte it sent.
fn play_deciding_application(input: &[u8], cuts: &[usize], config: SessionConfig) -> Vec<u8> {
    let now = Instant::now();
    let mut session = Session::new(config, now);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    let mut sent = Vec::new();
    let mut from = 0;
    let mut subscribes = 0;
    for to in cuts {
        session.handle_input(&input[from..to], now);
        from = to;
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connect(_) => session.accept("s-1", now),
                Event::Subscribe { key, receipt, .. } => {
                    subscribes += 1;
                    if subscribes % 3 == 0 {
                        session.refuse_subscription(key);
                    } else {
                        session.accept_subscription(key);
                        if let Some(receipt) = receipt {
                            session.receipt(receipt, now);
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(transmit) = session.poll_transmit() {
            sent.extend_from_slice(&transmit.into_contiguous());
        }
    }
    sent
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Pipelined SUBSCRIBEs past the subscription limit: the application's refusals and
    /// receipts, and the engine's ERROR for one too many, come out the same, in the same
    /// order, with nothing after the ERROR, however the bytes are chunked.
    #[test]
    fn pipelined_subscribes_get_the_same_answers_in_any_chunking(
        count in 1usize..40,
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let mut input = frame("CONNECT", &[("accept-version", "1.2".into()), ("heart-beat", "0,0".into())], "");
        for n in 0..count {
            input.push_str(&frame(
                "SUBSCRIBE",
                &[("id", format!("s{n}")), ("destination", format!("/t/{n}")), ("receipt", format!("r{n}"))],
                "",
            ));
        }
        let config = SessionConfig { max_subscriptions: 8, ..SessionConfig::default() };
        let whole = play_deciding_application(input.as_bytes(), &[], config.clone());
        let chunked = play_deciding_application(input.as_bytes(), &cuts, config);
        prop_assert_eq!(String::from_utf8_lossy(&chunked), String::from_utf8_lossy(&whole));
        let text = String::from_utf8_lossy(&whole);
        if let Some(error) = text.find("ERROR\n") {
            prop_assert!(!text[error..].contains("RECEIPT"), "{}", text);
        }
        // Every third is refused, so 8 accepted ones take 11 SUBSCRIBEs; the 12th is one
        // too many.
        prop_assert_eq!(text.contains("ERROR\n"), count >= 12, "{}", text);
    }
}
