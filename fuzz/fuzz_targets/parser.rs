//! Arbitrary bytes in arbitrary chunks: the parser must never panic, never hold more than
//! the frame limit, and read the same items however the stream is cut.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtchat_stomp::{Item, Limits, Parser, Status, Version, parse_frame};

/// Small limits, so the fuzzer reaches every one of them.
const LIMITS: Limits = Limits {
    max_frame_bytes: 512,
    max_headers: 8,
    max_header_line_bytes: 64,
    max_body_bytes: 256,
};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the version and how the rest is cut into chunks.
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let version = Version::ALL[usize::from(control % 3)];

    let (chunked_items, chunked_failed) =
        parse_in_chunks(stream, version, usize::from(control / 3));
    let (whole_items, whole_failed) = parse_whole(stream, version);
    assert_eq!(chunked_items, whole_items, "chunking changed the items");
    assert_eq!(
        chunked_failed, whole_failed,
        "chunking changed whether the stream is valid"
    );
});

/// Feeds `stream` in chunks whose sizes vary with `seed`; answers the items and whether
/// the parser failed.
fn parse_in_chunks(mut stream: &[u8], version: Version, seed: usize) -> (Vec<Item>, bool) {
    let mut parser = Parser::new(LIMITS);
    parser.set_version(version);
    let mut items = Vec::new();
    let mut chunk_len = seed + 1;
    while !stream.is_empty() {
        let (chunk, rest) = stream.split_at(chunk_len.min(stream.len()));
        stream = rest;
        chunk_len = (chunk_len * 31 + 7) % 701 + 1;
        parser.feed(chunk);
        assert!(
            parser.buffered() <= LIMITS.max_frame_bytes,
            "buffered past the frame limit"
        );
        loop {
            match parser.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => {
                    assert_eq!(parser.buffered(), 0, "a failed parser holds nothing");
                    assert!(parser.next_item().is_err(), "a failed parser stays failed");
                    return (items, true);
                }
            }
            assert!(
                parser.buffered() <= LIMITS.max_frame_bytes,
                "buffered past the frame limit"
            );
        }
    }
    (items, false)
}

/// Parses `stream` held whole with `parse_frame`; answers the items and whether it failed.
fn parse_whole(stream: &[u8], version: Version) -> (Vec<Item>, bool) {
    let mut rest = Bytes::copy_from_slice(stream);
    let mut items = Vec::new();
    loop {
        match parse_frame(&rest, version, &LIMITS) {
            Ok(Status::Complete((item, used))) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                items.push(item);
                let _ = rest.split_to(used);
            }
            Ok(Status::Partial) => return (items, false),
            Err(_) => return (items, true),
        }
    }
}
