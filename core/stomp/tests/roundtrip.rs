//! Properties tying the encoder and the parser together: whatever a version can carry,
//! encoding then parsing gives back the same frame, and how a stream is cut into chunks
//! never changes what the parser reads from it.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rtchat_stomp::{
    Command, Frame, Headers, Item, Limits, Parser, SharedMessage, Status, Version,
    encode_message_head, encode_to_bytes, parse_frame,
};

/// Characters that exercise every escaping rule, plus a NUL and a non-ASCII letter.
const INTERESTING: &[char] = &['a', 'b', ':', '\n', '\r', '\\', ' ', 'é', '\0', '-'];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(INTERESTING), 0..8)
        .prop_map(|chars| chars.into_iter().collect())
}

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.to_vec())
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

/// The rules a header of `command` in `version` is written under.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Escaping {
    None,
    V1_1,
    V1_2,
}

fn escaping(command: Command, version: Version) -> Escaping {
    match version {
        _ if !command.escapes_headers() => Escaping::None,
        Version::V1_0 => Escaping::None,
        Version::V1_1 => Escaping::V1_1,
        Version::V1_2 => Escaping::V1_2,
    }
}

/// Turns an arbitrary header into one the wire can carry under `escaping`: without escaping a
/// name holds no `:` and nothing holds a line feed; a final CR would read as part of a CRLF
/// unless 1.2 escapes it. `content-length` is left to the encoder.
fn carriable(name: String, value: String, escaping: Escaping) -> (String, String) {
    let (mut name, mut value) = if escaping == Escaping::None {
        (name.replace([':', '\n'], ""), value.replace('\n', ""))
    } else {
        (name, value)
    };
    if escaping != Escaping::V1_2 {
        while value.ends_with('\r') {
            value.pop();
        }
    }
    if name == "content-length" {
        name.push('x');
    }
    (name, value)
}

/// Any frame the encoder and the parser agree on for `version`.
fn frame_in(version: Version) -> impl Strategy<Value = Frame> {
    (
        command(),
        prop::collection::vec((text(), text()), 0..6),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(command, headers, body)| {
            let rules = escaping(command, version);
            Frame {
                command,
                headers: headers
                    .into_iter()
                    .map(|(name, value)| carriable(name, value, rules))
                    .collect(),
                body: Bytes::from(body),
            }
        })
}

/// What the parser reads back: the frame plus the `content-length` the encoder added.
fn as_parsed(frame: &Frame) -> Frame {
    let mut expected = frame.clone();
    if !frame.body.is_empty() {
        expected
            .headers
            .push("content-length", frame.body.len().to_string());
    }
    expected
}

fn parse_whole(bytes: &Bytes, version: Version) -> (Item, usize) {
    match parse_frame(bytes, version, &Limits::default()) {
        Ok(Status::Complete(complete)) => complete,
        other => panic!("expected a complete item, got {other:?}"),
    }
}

/// Feeds `stream` cut at `cuts` (offsets, any order) and collects every item.
fn parse_chunked(stream: &[u8], cuts: &[usize], version: Version) -> Vec<Item> {
    let mut offsets: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    offsets.push(0);
    offsets.push(stream.len());
    offsets.sort_unstable();
    let mut parser = Parser::new(Limits::default());
    parser.set_version(version);
    let mut items = Vec::new();
    for window in offsets.windows(2) {
        parser.feed(&stream[window[0]..window[1]]);
        while let Some(item) = parser.next_item().expect("a valid stream") {
            items.push(item);
        }
        assert!(parser.buffered() <= Limits::default().max_frame_bytes);
    }
    assert_eq!(parser.buffered(), 0, "every byte belongs to an item");
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoded_frame_parses_back_to_the_same_frame(
        (version, frame) in version().prop_flat_map(|v| (Just(v), frame_in(v)))
    ) {
        let bytes = encode_to_bytes(&frame, version);
        let (item, used) = parse_whole(&bytes, version);
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(item, Item::Frame(as_parsed(&frame)));
    }

    #[test]
    fn any_chunking_of_a_stream_reads_the_same_items(
        (version, frames) in version()
            .prop_flat_map(|v| (Just(v), prop::collection::vec(frame_in(v), 1..5))),
        heart_beats in prop::collection::vec(prop::sample::select(vec!["", "\n", "\r\n", "\n\n"]), 5),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        for (frame, eols) in frames.iter().zip(heart_beats.iter().cycle()) {
            stream.extend_from_slice(&encode_to_bytes(frame, version));
            expected.push(Item::Frame(as_parsed(frame)));
            stream.extend_from_slice(eols.as_bytes());
            let beats = eols.matches('\n').count();
            expected.extend(std::iter::repeat_n(Item::HeartBeat, beats));
        }
        let whole = parse_chunked(&stream, &[], version);
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(parse_chunked(&stream, &cuts, version), whole);
    }

    #[test]
    fn message_head_and_shared_tail_parse_as_one_message(
        version in version(),
        destination in text(),
        message_id in text(),
        content_type in prop::option::of(text()),
        extra in prop::collection::vec((text(), text()), 0..4),
        subscription in text(),
        ack in prop::option::of(any::<u64>()),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let rules = escaping(Command::Message, version);
        let value = |text: String| carriable(String::new(), text, rules).1;
        let (destination, message_id, subscription) =
            (value(destination), value(message_id), value(subscription));
        let content_type = content_type.map(value);
        let extra: Headers = extra
            .into_iter()
            .map(|(name, value)| carriable(name, value, rules))
            .collect();

        let message = SharedMessage::new(
            &destination,
            &message_id,
            content_type.as_deref(),
            &extra,
            Bytes::from(body.clone()),
        );
        let mut wire = BytesMut::new();
        encode_message_head(&subscription, ack, version, &mut wire);
        wire.extend_from_slice(message.tail(version));
        let wire = wire.freeze();

        let mut expected = Frame::new(Command::Message).header("subscription", subscription);
        if let Some(ack) = ack {
            expected = expected.header("ack", ack.to_string());
        }
        expected = expected
            .header("destination", destination)
            .header("message-id", message_id.clone());
        if let Some(content_type) = content_type {
            expected = expected.header("content-type", content_type);
        }
        for (name, value) in extra.iter() {
            expected = expected.header(name, value);
        }
        expected = expected
            .header("content-length", body.len().to_string())
            .body(body);

        let (item, used) = parse_whole(&wire, version);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(item, Item::Frame(expected));
        prop_assert_eq!(message.message_id(), message_id);
    }
}

/// Pieces of STOMP and of things that break it, so random streams hit every rule and limit.
const TOKENS: &[&[u8]] = &[
    b"SEND\n",
    b"MESSAGE\n",
    b"CONNECT\n",
    b"send\n",
    b"a:b\n",
    b"x:\\c\\n\\r\n",
    b"x:\\t\n",
    b"content-length:3\n",
    b"content-length:x\n",
    b"content-length:999\n",
    b"nocolon\n",
    b"\n",
    b"\r\n",
    b"\r",
    b"\0",
    b"abc",
    b"\\",
    b":",
    "\u{e9}".as_bytes(),
    b"\xff",
];

/// Small limits, so short random streams reach them.
const TIGHT: Limits = Limits {
    max_frame_bytes: 96,
    max_headers: 3,
    max_header_line_bytes: 24,
    max_body_bytes: 48,
};

/// Items and whether the stream failed, read with `parse_frame` from one buffer.
fn read_whole(stream: &[u8], version: Version) -> (Vec<Item>, bool) {
    let mut rest = Bytes::copy_from_slice(stream);
    let mut items = Vec::new();
    loop {
        match parse_frame(&rest, version, &TIGHT) {
            Ok(Status::Complete((item, used))) => {
                assert!(used > 0 && used <= rest.len());
                items.push(item);
                let _ = rest.split_to(used);
            }
            Ok(Status::Partial) => return (items, false),
            Err(_) => return (items, true),
        }
    }
}

/// Items and whether the stream failed, read by a `Parser` fed chunks of `chunk` bytes.
fn read_chunked(stream: &[u8], version: Version, chunk: usize) -> (Vec<Item>, bool) {
    let mut parser = Parser::new(TIGHT);
    parser.set_version(version);
    let mut items = Vec::new();
    for piece in stream.chunks(chunk) {
        parser.feed(piece);
        assert!(parser.buffered() <= TIGHT.max_frame_bytes);
        loop {
            match parser.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => {
                    assert_eq!(parser.buffered(), 0);
                    return (items, true);
                }
            }
        }
    }
    (items, false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The fuzz target's property on a budget: for any stream, valid or not, the parser
    /// stays within its limits and chunking changes neither the items nor the verdict.
    #[test]
    fn chunking_never_changes_items_or_verdict_even_for_garbage(
        version in version(),
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40),
        chunk in 1usize..200,
    ) {
        let stream: Vec<u8> = tokens.concat();
        prop_assert_eq!(read_chunked(&stream, version, chunk), read_whole(&stream, version));
    }
}
