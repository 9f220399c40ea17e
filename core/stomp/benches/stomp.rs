//! Throughput of the STOMP engine's hot paths: parsing, encoding, and fanning one MESSAGE
//! out to many subscriptions. Run with `cargo bench -p rtchat-stomp`; figures and the
//! machine they came from are in `docs/benchmarks.md`.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtchat_stomp::{
    Command, Event, Frame, Headers, Item, Limits, Parser, Session, SessionConfig, SharedMessage,
    Status, SubscriptionKey, Transmit, Version, encode_frame, encode_message_head, parse_frame,
};
use std::hint::black_box;
use std::time::Instant;

const FAN_OUT: usize = 1_000;
const LARGE_BODY: usize = 64 * 1024;

/// A SEND as the chat page writes it: about 200 bytes on the wire.
fn chat_send() -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/pub/chat")
        .header("content-type", "application/json")
        .header("receipt", "receipt-42")
        .body(r#"{"roomId":"lobby","message":"Hello everyone! Is anyone around to talk about the release tonight? I have questions."}"#)
}

/// A SEND with a 64 KiB body behind a `content-length` (the body limit).
fn large_send() -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/pub/chat")
        .body(vec![b'x'; LARGE_BODY])
}

fn wire(frame: &Frame) -> Bytes {
    rtchat_stomp::encode_to_bytes(frame, Version::V1_2)
}

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse");

    let small = wire(&chat_send());
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("parse_frame", format!("{}B", small.len())),
        |b| b.iter(|| parse_frame(black_box(&small), Version::V1_2, &limits)),
    );

    // The path a connection takes: one feed holding many frames, drained item by item.
    let frames_per_chunk = 100;
    let stream: Vec<u8> = small
        .iter()
        .copied()
        .cycle()
        .take(small.len() * frames_per_chunk)
        .collect();
    group.throughput(Throughput::Elements(frames_per_chunk as u64));
    group.bench_function(
        BenchmarkId::new(
            "parser_stream",
            format!("{frames_per_chunk}x{}B", small.len()),
        ),
        |b| {
            let mut parser = Parser::new(limits);
            b.iter(|| {
                parser.feed(black_box(&stream));
                let mut frames = 0;
                while let Ok(Some(item)) = parser.next_item() {
                    frames += usize::from(matches!(item, Item::Frame(_)));
                }
                assert_eq!(frames, frames_per_chunk);
            })
        },
    );

    let large = wire(&large_send());
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("parse_frame/content_length_64KiB", |b| {
        b.iter(|| {
            let parsed = parse_frame(black_box(&large), Version::V1_2, &limits);
            assert!(matches!(parsed, Ok(Status::Complete(_))));
        })
    });

    // Without content-length the end is found by memchr for the NUL.
    let mut nul_terminated = BytesMut::from(&b"SEND\ndestination:/pub/chat\n\n"[..]);
    nul_terminated.extend_from_slice(&vec![b'x'; LARGE_BODY]);
    nul_terminated.extend_from_slice(b"\0");
    let nul_terminated = nul_terminated.freeze();
    group.throughput(Throughput::Bytes(nul_terminated.len() as u64));
    group.bench_function("parse_frame/nul_terminated_64KiB", |b| {
        b.iter(|| {
            let parsed = parse_frame(black_box(&nul_terminated), Version::V1_2, &limits);
            assert!(matches!(parsed, Ok(Status::Complete(_))));
        })
    });

    // A large frame arriving in 1 KiB pieces, as a slow link delivers it.
    group.bench_function("parser_1KiB_chunks/content_length_64KiB", |b| {
        let mut parser = Parser::new(limits);
        b.iter(|| {
            for piece in large.chunks(1024) {
                parser.feed(black_box(piece));
                if let Ok(Some(item)) = parser.next_item() {
                    black_box(item);
                }
            }
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let small = chat_send();
    let mut out = BytesMut::with_capacity(1024);
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("encode_frame", format!("{}B", wire(&small).len())),
        |b| {
            b.iter(|| {
                out.clear();
                encode_frame(black_box(&small), Version::V1_2, &mut out);
            })
        },
    );

    let large = large_send();
    let mut out = BytesMut::with_capacity(LARGE_BODY + 1024);
    group.throughput(Throughput::Bytes(wire(&large).len() as u64));
    group.bench_function("encode_frame/content_length_64KiB", |b| {
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&large), Version::V1_2, &mut out);
        })
    });
    group.finish();
}

/// The body a room broadcast carries.
fn chat_message_body() -> Bytes {
    Bytes::from_static(
        br##"{"id":1234567,"roomId":"lobby","message":"Hello everyone!","randId":"Mario 42","nameTag":"#A1B2C3","createdAt":"2026-11-02T10:00:00Z","ipAddress":"192.168"}"##,
    )
}

fn fan_out(c: &mut Criterion) {
    let subscriptions: Vec<String> = (0..FAN_OUT).map(|i| format!("sub-{i}")).collect();
    let mut group = c.benchmark_group("fan_out");
    group.throughput(Throughput::Elements(FAN_OUT as u64));

    // The engine's own cost: one tail, a thousand heads.
    let mut transmits = Vec::with_capacity(FAN_OUT);
    group.bench_function("shared_message_and_1000_heads", |b| {
        b.iter(|| {
            let message = SharedMessage::new(
                "/sub/channel/lobby",
                "1234567",
                Some("application/json"),
                &Headers::new(),
                chat_message_body(),
            );
            transmits.clear();
            for (key, subscription) in (1..).zip(&subscriptions) {
                let mut head = BytesMut::with_capacity(64);
                encode_message_head(subscription, None, Version::V1_2, &mut head);
                transmits.push(Transmit::Message {
                    subscription: SubscriptionKey(key),
                    head: head.freeze(),
                    tail: message.tail(Version::V1_2).clone(),
                });
            }
            black_box(&transmits);
        })
    });

    // The same through a connected Session: deliver to each subscription, then drain.
    let now = Instant::now();
    let (mut session, keys) = connected_session(&subscriptions, now);
    group.bench_function("session_deliver_1000_subscriptions", |b| {
        b.iter(|| {
            let message = SharedMessage::new(
                "/sub/channel/lobby",
                "1234567",
                Some("application/json"),
                &Headers::new(),
                chat_message_body(),
            );
            for &key in &keys {
                session
                    .deliver(key, &message, now)
                    .expect("an auto-ack subscription");
            }
            let mut drained = 0;
            while let Some(transmit) = session.poll_transmit() {
                drained += 1;
                black_box(transmit);
            }
            assert_eq!(drained, FAN_OUT);
        })
    });
    group.finish();
}

/// A session connected in 1.2 with one accepted auto-ack subscription per id, and their keys.
fn connected_session(subscriptions: &[String], now: Instant) -> (Session, Vec<SubscriptionKey>) {
    let config = SessionConfig {
        max_subscriptions: subscriptions.len(),
        // The set-up sends a thousand SUBSCRIBEs at one instant.
        max_frames_per_second: 0,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, now);
    session.handle_input(b"CONNECT\naccept-version:1.2\nhost:bench\n\n\0", now);
    match session.poll_event() {
        Some(Event::Connect(_)) => session.accept("bench", now),
        other => panic!("expected CONNECT, got {other:?}"),
    }
    for id in subscriptions {
        let subscribe = Frame::new(Command::Subscribe)
            .header("id", id.as_str())
            .header("destination", "/sub/channel/lobby");
        session.handle_input(&wire(&subscribe), now);
    }
    let mut keys = Vec::with_capacity(subscriptions.len());
    while let Some(event) = session.poll_event() {
        let Event::Subscribe { key, .. } = event else {
            panic!("expected SUBSCRIBE, got {event:?}");
        };
        assert!(session.accept_subscription(key));
        keys.push(key);
    }
    assert_eq!(keys.len(), subscriptions.len());
    while session.poll_transmit().is_some() {}
    (session, keys)
}

criterion_group!(benches, parse, encode, fan_out);
criterion_main!(benches);
