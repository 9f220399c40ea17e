//! Arbitrary bytes in arbitrary chunks into a server session, with time passing: it must
//! never panic, whatever a peer sends and however the application answers.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtchat_stomp::{Event, Headers, Session, SessionConfig, SharedMessage};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut session = Session::new(SessionConfig::default(), now);
    let mut rest = data;
    // Each step: a control byte, then a chunk of up to 64 bytes for the session.
    while let Some((&control, tail)) = rest.split_first() {
        let len = usize::from(control & 0x3f);
        let (chunk, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        session.handle_input(chunk, now);
        drain(&mut session, now);
        if control & 0x40 != 0 {
            // Jump to the next deadline (a heart-beat due, or a peer gone silent).
            if let Some(deadline) = session.poll_timeout() {
                now = now.max(deadline);
            }
            session.handle_timeout(now);
        } else {
            now += Duration::from_millis(u64::from(control) * 10);
            session.handle_timeout(now);
        }
        drain(&mut session, now);
        if session.is_closed() {
            break;
        }
    }
    session.handle_transport_closed();
    drain(&mut session, now);
});

/// Answers every event as the chat application would, then takes every transmit.
fn drain(session: &mut Session, now: Instant) {
    while let Some(event) = session.poll_event() {
        match event {
            Event::Connect(_) => session.accept("s1", now),
            Event::Send {
                receipt: Some(receipt),
                ..
            } => session.receipt(receipt, now),
            // Every fourth is refused, so both answers are exercised (and a refused key is
            // delivered to, which must fail quietly).
            Event::Subscribe { key, .. } => {
                if key.0 % 4 == 0 {
                    session.refuse_subscription(key);
                } else {
                    session.accept_subscription(key);
                }
                let message = SharedMessage::new(
                    "/sub/channel/lobby",
                    "1",
                    Some("text/plain"),
                    &Headers::new(),
                    Bytes::from_static(b"hello"),
                );
                let _ = session.deliver(key, &message, now);
            }
            _ => {}
        }
    }
    while let Some(transmit) = session.poll_transmit() {
        assert!(!transmit.is_empty(), "the session never sends nothing");
    }
}
