//! The parser's behaviour: framing, escaping, limits and chunking.

use super::*;

fn parse(input: &[u8], version: Version) -> Result<Status<(Item, usize)>, ParseError> {
    parse_frame(&Bytes::copy_from_slice(input), version, &Limits::default())
}

fn parse_one(input: &[u8], version: Version) -> (Frame, usize) {
    match parse(input, version) {
        Ok(Status::Complete((Item::Frame(frame), used))) => (frame, used),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn parse_err(input: &[u8], version: Version) -> ParseError {
    parse_with(input, version, &Limits::default())
}

fn parse_with(input: &[u8], version: Version, limits: &Limits) -> ParseError {
    match parse_frame(&Bytes::copy_from_slice(input), version, limits) {
        Err(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Feeds `input` in chunks of `chunk` bytes, collecting items after each chunk.
fn stream(parser: &mut Parser, input: &[u8], chunk: usize) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        parser.feed(piece);
        while let Some(item) = parser.next_item()? {
            items.push(item);
        }
    }
    Ok(items)
}

fn headers_of(frame: &Frame) -> Vec<(&str, &str)> {
    frame.headers.iter().collect()
}

#[test]
fn frame_is_command_headers_blank_line_body_and_nul() {
    let input = b"SEND\ndestination:/pub/chat\nreceipt:7\n\nhello\0";
    let (frame, used) = parse_one(input, Version::V1_2);
    assert_eq!(used, input.len());
    assert_eq!(frame.command, Command::Send);
    assert_eq!(
        headers_of(&frame),
        [("destination", "/pub/chat"), ("receipt", "7")]
    );
    assert_eq!(frame.body, "hello");
}

#[test]
fn parse_frame_reports_the_bytes_of_the_first_frame_only() {
    let input = b"BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0";
    let (frame, used) = parse_one(input, Version::V1_2);
    assert_eq!(frame.command, Command::Begin);
    assert_eq!(used, b"BEGIN\ntransaction:t\n\n\0".len());
}

#[test]
fn unfinished_frame_is_partial_at_every_split_point() {
    let input = b"SEND\ndestination:/a\n\nbody\0";
    for end in 0..input.len() {
        assert_eq!(
            parse(&input[..end], Version::V1_2),
            Ok(Status::Partial),
            "{end}"
        );
    }
}

#[test]
fn commands_are_case_sensitive() {
    assert_eq!(
        parse_err(b"send\n\n\0", Version::V1_2),
        ParseError::UnknownCommand
    );
    assert_eq!(
        parse_err(b"Send\n\n\0", Version::V1_2),
        ParseError::UnknownCommand
    );
}

#[test]
fn every_command_is_recognised() {
    for command in Command::ALL {
        let input = format!("{command}\n\n\0");
        let (frame, _) = parse_one(input.as_bytes(), Version::V1_2);
        assert_eq!(frame.command, command);
    }
}

#[test]
fn unknown_command_fails_before_its_line_ends() {
    // No command is longer than UNSUBSCRIBE: a long first line is refused at once.
    assert_eq!(
        parse_err(b"GET / HTTP/1.1", Version::V1_2),
        ParseError::UnknownCommand
    );
}

#[test]
fn eol_between_frames_is_a_heart_beat() {
    assert_eq!(
        parse(b"\n", Version::V1_2),
        Ok(Status::Complete((Item::HeartBeat, 1)))
    );
}

#[test]
fn crlf_heart_beat_counts_once() {
    assert_eq!(
        parse(b"\r\nSEND", Version::V1_2),
        Ok(Status::Complete((Item::HeartBeat, 2)))
    );
    assert_eq!(parse(b"\r", Version::V1_2), Ok(Status::Partial));
}

#[test]
fn crlf_line_ends_are_accepted_in_every_version() {
    for version in Version::ALL {
        let input = b"SEND\r\ndestination:/a\r\n\r\nx\0";
        let (frame, used) = parse_one(input, version);
        assert_eq!(used, input.len());
        assert_eq!(frame.command, Command::Send);
        assert_eq!(headers_of(&frame), [("destination", "/a")]);
        assert_eq!(frame.body, "x");
    }
}

#[test]
fn repeated_headers_are_kept_in_order_and_the_first_wins() {
    let (frame, _) = parse_one(b"MESSAGE\nfoo:World\nfoo:Hello\n\n\0", Version::V1_2);
    assert_eq!(headers_of(&frame), [("foo", "World"), ("foo", "Hello")]);
    assert_eq!(frame.get("foo"), Some("World"));
}

#[test]
fn header_value_is_everything_after_the_first_colon_untrimmed() {
    let (frame, _) = parse_one(b"SEND\n a : b:c \n\n\0", Version::V1_0);
    assert_eq!(headers_of(&frame), [(" a ", " b:c ")]);
}

#[test]
fn header_line_without_colon_is_an_error() {
    assert_eq!(
        parse_err(b"SEND\ndestination\n\n\0", Version::V1_2),
        ParseError::HeaderWithoutColon
    );
}

#[test]
fn v10_does_not_unescape() {
    let (frame, _) = parse_one(b"SEND\na\\cb:x\\ny\\q\n\n\0", Version::V1_0);
    assert_eq!(headers_of(&frame), [("a\\cb", "x\\ny\\q")]);
}

#[test]
fn frames_after_connect_in_one_big_chunk_wait_for_the_negotiated_version() {
    let limits = Limits {
        max_frame_bytes: 64,
        ..Limits::default()
    };
    let mut parser = Parser::new(limits);
    let mut chunk = b"CONNECT\naccept-version:1.0\n\n\0".to_vec();
    // More than a frame's worth in one chunk makes `feed` read ahead.
    for _ in 0..4 {
        chunk.extend_from_slice(b"SEND\ndestination:/a\\nb\n\n\0");
    }
    parser.feed(&chunk);
    let Some(Item::Frame(connect)) = parser.next_item().expect("CONNECT") else {
        panic!("expected CONNECT first");
    };
    assert_eq!(connect.command, Command::Connect);
    parser.set_version(Version::V1_0);
    for _ in 0..4 {
        let Some(Item::Frame(send)) = parser.next_item().expect("SEND") else {
            panic!("expected SEND");
        };
        // 1.0 does not unescape: the backslash stays.
        assert_eq!(send.get("destination"), Some("/a\\nb"));
    }
}

#[test]
fn v11_unescapes_newline_colon_and_backslash() {
    let (frame, _) = parse_one(b"SEND\na\\cb:1\\n2\\\\3\n\n\0", Version::V1_1);
    assert_eq!(headers_of(&frame), [("a:b", "1\n2\\3")]);
}

#[test]
fn v12_also_unescapes_carriage_return() {
    let (frame, _) = parse_one(b"SEND\nx:a\\rb\n\n\0", Version::V1_2);
    assert_eq!(headers_of(&frame), [("x", "a\rb")]);
}

#[test]
fn undefined_escape_is_an_error_in_v11() {
    assert_eq!(
        parse_err(b"SEND\nx:a\\tb\n\n\0", Version::V1_1),
        ParseError::InvalidEscape
    );
    // `\r` is only defined from 1.2 on.
    assert_eq!(
        parse_err(b"SEND\nx:a\\rb\n\n\0", Version::V1_1),
        ParseError::InvalidEscape
    );
}

#[test]
fn trailing_lone_backslash_is_an_undefined_escape() {
    assert_eq!(
        parse_err(b"SEND\nx:a\\\n\n\0", Version::V1_2),
        ParseError::InvalidEscape
    );
}

#[test]
fn connect_and_connected_headers_are_never_unescaped() {
    for command in ["CONNECT", "STOMP", "CONNECTED"] {
        let input = format!("{command}\nlogin:a\\cb\\q\n\n\0");
        let (frame, _) = parse_one(input.as_bytes(), Version::V1_2);
        assert_eq!(headers_of(&frame), [("login", "a\\cb\\q")], "{command}");
    }
}

#[test]
fn headers_must_be_utf8() {
    assert_eq!(
        parse_err(b"SEND\nx:\xff\n\n\0", Version::V1_2),
        ParseError::InvalidUtf8
    );
    assert_eq!(
        parse_err(b"SEND\n\xc3:x\n\n\0", Version::V1_0),
        ParseError::InvalidUtf8
    );
}

#[test]
fn content_length_body_may_contain_nul() {
    let input = b"SEND\ncontent-length:5\n\na\0b\0c\0";
    let (frame, used) = parse_one(input, Version::V1_2);
    assert_eq!(used, input.len());
    assert_eq!(frame.body, &b"a\0b\0c"[..]);
}

#[test]
fn content_length_body_must_be_followed_by_nul() {
    assert_eq!(
        parse_err(b"SEND\ncontent-length:2\n\nabc\0", Version::V1_2),
        ParseError::MissingNul
    );
}

#[test]
fn first_content_length_decides() {
    let (frame, _) = parse_one(
        b"SEND\ncontent-length:1\ncontent-length:3\n\na\0",
        Version::V1_2,
    );
    assert_eq!(frame.body, "a");
}

#[test]
fn content_length_must_be_decimal_digits() {
    for value in ["", "-1", "+1", " 1", "0x10", "1.0"] {
        let input = format!("SEND\ncontent-length:{value}\n\n\0");
        assert_eq!(
            parse_err(input.as_bytes(), Version::V1_2),
            ParseError::InvalidContentLength,
            "{value:?}"
        );
    }
}

#[test]
fn body_without_content_length_ends_at_the_first_nul() {
    let (frame, used) = parse_one(b"SEND\n\nab\0cd\0", Version::V1_2);
    assert_eq!(frame.body, "ab");
    assert_eq!(used, 9);
}

#[test]
fn body_is_a_slice_of_the_input_not_a_copy() {
    let input = Bytes::from_static(b"SEND\ncontent-length:3\n\nabc\0");
    let Ok(Status::Complete((Item::Frame(frame), _))) =
        parse_frame(&input, Version::V1_2, &Limits::default())
    else {
        panic!("expected a frame");
    };
    let body_start = input.len() - 4;
    assert_eq!(frame.body.as_ptr(), input[body_start..].as_ptr());
}

#[test]
fn parser_body_shares_the_receive_buffer() {
    let mut parser = Parser::new(Limits::default());
    parser.feed(b"SEND\n\nabc\0");
    let Ok(Some(Item::Frame(frame))) = parser.next_item() else {
        panic!("expected a frame");
    };
    assert_eq!(frame.body, "abc");
    assert_eq!(parser.buffered(), 0);
}

#[test]
fn too_large_content_length_fails_before_the_body_arrives() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse_with(b"SEND\ncontent-length:11\n", Version::V1_2, &limits),
        ParseError::BodyTooLarge
    );
    // A number too large for memory is too large a body, not a malformed one.
    assert_eq!(
        parse_with(
            b"SEND\ncontent-length:99999999999999999999999\n",
            Version::V1_2,
            &limits
        ),
        ParseError::BodyTooLarge
    );
}

#[test]
fn unterminated_body_fails_once_it_exceeds_the_body_limit() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let mut input = b"SEND\n\n".to_vec();
    input.extend_from_slice(&[b'x'; 10]);
    assert_eq!(
        parse_frame(&Bytes::from(input.clone()), Version::V1_2, &limits),
        Ok(Status::Partial)
    );
    input.push(b'x');
    assert_eq!(
        parse_with(&input, Version::V1_2, &limits),
        ParseError::BodyTooLarge
    );
}

#[test]
fn body_of_exactly_the_limit_is_accepted() {
    let limits = Limits {
        max_body_bytes: 4,
        max_frame_bytes: 64,
        ..Limits::default()
    };
    let input = Bytes::from_static(b"SEND\n\nabcd\0");
    assert!(matches!(
        parse_frame(&input, Version::V1_2, &limits),
        Ok(Status::Complete(_))
    ));
    let input = Bytes::from_static(b"SEND\ncontent-length:4\n\nabcd\0");
    assert!(matches!(
        parse_frame(&input, Version::V1_2, &limits),
        Ok(Status::Complete(_))
    ));
}

#[test]
fn frame_of_exactly_the_frame_limit_is_accepted_and_one_more_byte_is_not() {
    let input = b"SEND\n\nabcd\0";
    let limits = Limits {
        max_frame_bytes: input.len(),
        ..Limits::default()
    };
    assert!(matches!(
        parse_frame(&Bytes::from_static(input), Version::V1_2, &limits),
        Ok(Status::Complete(_))
    ));
    assert_eq!(
        parse_with(b"SEND\n\nabcde\0", Version::V1_2, &limits),
        ParseError::FrameTooLarge
    );
    assert_eq!(
        parse_with(b"SEND\ncontent-length:5\n\n", Version::V1_2, &limits),
        ParseError::FrameTooLarge
    );
}

#[test]
fn too_many_headers_fail_as_soon_as_one_more_header_starts() {
    let limits = Limits {
        max_headers: 2,
        ..Limits::default()
    };
    assert!(matches!(
        parse_frame(
            &Bytes::from_static(b"SEND\na:1\nb:2\n\n\0"),
            Version::V1_2,
            &limits
        ),
        Ok(Status::Complete(_))
    ));
    assert_eq!(
        parse_with(b"SEND\na:1\nb:2\nc", Version::V1_2, &limits),
        ParseError::TooManyHeaders
    );
    // A pending CRLF could still be the blank line: not an error yet.
    assert_eq!(
        parse_frame(
            &Bytes::from_static(b"SEND\na:1\nb:2\r"),
            Version::V1_2,
            &limits
        ),
        Ok(Status::Partial)
    );
}

#[test]
fn oversized_header_line_fails_before_its_eol_arrives() {
    let limits = Limits {
        max_header_line_bytes: 8,
        ..Limits::default()
    };
    assert_eq!(
        parse_frame(
            &Bytes::from_static(b"SEND\nabcd:567"),
            Version::V1_2,
            &limits
        ),
        Ok(Status::Partial)
    );
    // Exactly the limit, with its CR still waiting for the LF, is fine.
    assert_eq!(
        parse_frame(
            &Bytes::from_static(b"SEND\nabcd:567\r"),
            Version::V1_2,
            &limits
        ),
        Ok(Status::Partial)
    );
    assert_eq!(
        parse_with(b"SEND\nabcd:5678", Version::V1_2, &limits),
        ParseError::HeaderLineTooLong
    );
}

#[test]
fn oversized_header_line_fails_before_buffering_it() {
    let limits = Limits::default();
    let mut parser = Parser::new(limits);
    parser.feed(b"SEND\n");
    let mut fed = 5;
    let error = loop {
        parser.feed(&[b'h'; 1024]);
        fed += 1024;
        match parser.next_item() {
            Ok(None) => assert!(fed < 1 << 20, "a MiB buffered without an error"),
            other => break other,
        }
    };
    assert_eq!(error, Err(ParseError::HeaderLineTooLong));
    assert!(fed <= limits.max_header_line_bytes + 2048);
    assert_eq!(parser.buffered(), 0);
}

#[test]
fn one_huge_chunk_is_refused_without_holding_more_than_a_frame() {
    let limits = Limits::default();
    let mut parser = Parser::new(limits);
    let mut input = b"SEND\nx:".to_vec();
    input.resize(1 << 20, b'h');
    parser.feed(&input);
    assert_eq!(parser.buffered(), 0, "the poisoned parser freed its buffer");
    assert_eq!(parser.next_item(), Err(ParseError::HeaderLineTooLong));
}

#[test]
fn huge_chunk_of_small_frames_is_parsed_while_it_is_buffered() {
    let limits = Limits {
        max_frame_bytes: 64,
        ..Limits::default()
    };
    let frame = b"SEND\ndestination:/a\n\nhello\0\n";
    let input: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 100)
        .collect();
    let mut parser = Parser::new(limits);
    parser.feed(&input);
    assert!(parser.buffered() <= limits.max_frame_bytes);
    let mut frames = 0;
    let mut beats = 0;
    while let Some(item) = parser.next_item().expect("valid stream") {
        match item {
            Item::Frame(_) => frames += 1,
            Item::HeartBeat => beats += 1,
        }
    }
    assert_eq!((frames, beats), (100, 100));
}

#[test]
fn heart_beats_read_ahead_are_counted_not_stored() {
    let limits = Limits {
        max_frame_bytes: 64,
        ..Limits::default()
    };
    let mut parser = Parser::new(limits);
    parser.feed(&[b'\n'; 10_000]);
    assert_eq!(parser.ready.len(), 1);
    let mut beats = 0;
    while let Some(item) = parser.next_item().expect("EOLs are valid") {
        assert_eq!(item, Item::HeartBeat);
        beats += 1;
    }
    assert_eq!(beats, 10_000);
}

#[test]
fn parser_reads_frames_split_at_every_byte() {
    let input = b"CONNECT\naccept-version:1.2\n\n\0\r\nSEND\ncontent-length:3\n\na\0b\0\nSUBSCRIBE\nid:1\n\n\0";
    let whole = stream(&mut Parser::new(Limits::default()), input, input.len()).unwrap();
    assert_eq!(whole.len(), 5);
    for chunk in 1..input.len() {
        let items = stream(&mut Parser::new(Limits::default()), input, chunk).unwrap();
        assert_eq!(items, whole, "chunk size {chunk}");
    }
}

#[test]
fn parser_remembers_how_far_it_scanned() {
    // A 64 KiB body in 1-byte chunks: with rescans this would take ~2 billion steps.
    let mut input = b"SEND\n\n".to_vec();
    input.resize(64 * 1024 + 6, b'x');
    input.push(0);
    let items = stream(&mut Parser::new(Limits::default()), &input, 1).unwrap();
    assert_eq!(items.len(), 1);
}

#[test]
fn failed_parser_keeps_failing_and_drops_input() {
    let mut parser = Parser::new(Limits::default());
    parser.feed(b"BOGUS\n\n\0");
    assert_eq!(parser.next_item(), Err(ParseError::UnknownCommand));
    parser.feed(b"SEND\n\n\0");
    assert_eq!(parser.buffered(), 0);
    assert_eq!(parser.next_item(), Err(ParseError::UnknownCommand));
}

#[test]
fn items_before_an_error_are_still_handed_out() {
    let limits = Limits {
        max_frame_bytes: 16,
        ..Limits::default()
    };
    let mut parser = Parser::new(limits);
    parser.feed(b"SEND\n\na\0SEND\n\nbbbbbbbbbbbbbbbbbbbb\0");
    assert!(matches!(parser.next_item(), Ok(Some(Item::Frame(_)))));
    assert_eq!(parser.next_item(), Err(ParseError::FrameTooLarge));
}

#[test]
fn set_version_changes_how_later_frames_are_unescaped() {
    let mut parser = Parser::new(Limits::default());
    parser.feed(b"SEND\nx:a\\cb\n\n\0");
    parser.set_version(Version::V1_0);
    let Ok(Some(Item::Frame(frame))) = parser.next_item() else {
        panic!("expected a frame");
    };
    assert_eq!(frame.get("x"), Some("a\\cb"));
}

#[test]
fn headers_are_slices_of_the_input_unless_unescaped() {
    let input = Bytes::from_static(b"SEND\nplain:abc\nescaped:a\\cb\nreceipt:r-7\n\n\0");
    let Ok(Status::Complete((Item::Frame(frame), _))) =
        parse_frame(&input, Version::V1_2, &Limits::default())
    else {
        panic!("expected a frame");
    };
    let input_range = input.as_ptr_range();
    let plain = frame.get("plain").expect("plain header");
    assert_eq!(plain, "abc");
    assert!(input_range.contains(&plain.as_ptr()), "not copied");
    let escaped = frame.get("escaped").expect("escaped header");
    assert_eq!(escaped, "a:b");
    assert!(!input_range.contains(&escaped.as_ptr()), "unescaped copy");
    let receipt = frame.headers.get_shared("receipt").expect("receipt header");
    assert_eq!(&*receipt, "r-7");
    assert!(
        input_range.contains(&receipt.as_ptr()),
        "shared, not copied"
    );
}

#[test]
fn parser_headers_share_the_receive_buffer_and_survive_more_input() {
    let mut parser = Parser::new(Limits::default());
    parser.feed(b"SEND\ndestination:/a\\c1\nid:x\n\n\0SEND\n");
    let Ok(Some(Item::Frame(frame))) = parser.next_item() else {
        panic!("expected a frame");
    };
    // The buffer the headers point into is not overwritten by what comes next.
    parser.feed(&[b'y'; 4096]);
    assert_eq!(frame.get("destination"), Some("/a:1"));
    assert_eq!(frame.get("id"), Some("x"));
    assert_eq!(frame.headers.len(), 2);
}

#[test]
fn built_and_parsed_headers_compare_by_content() {
    let (frame, _) = parse_one(b"SEND\na:1\nb:2\\c3\n\n\0", Version::V1_2);
    let built = Headers::new().with("a", "1").with("b", "2:3");
    assert_eq!(frame.headers, built);
    assert_ne!(
        frame.headers,
        Headers::new().with("b", "2:3").with("a", "1")
    );
}

#[test]
fn a_parser_holds_no_buffer_once_everything_read_is_parsed() {
    let mut parser = Parser::new(Limits::default());
    parser.set_version(Version::V1_2);
    let items =
        stream(&mut parser, b"SEND\ndestination:/a\n\nhi\0SEND\ndest", 4096).expect("frames parse");
    assert_eq!(items.len(), 1);
    // Half a frame waits in the buffer.
    assert!(parser.buffer.capacity() != 0);
    let items = stream(&mut parser, b"ination:/b\n\n\0\n", 4096).expect("frames parse");
    assert_eq!(items.len(), 2, "the frame, then a heart-beat");
    assert_eq!(
        parser.buffer.capacity(),
        0,
        "an idle parser keeps no allocation"
    );
    // And it goes on reading.
    let items = stream(&mut parser, b"SEND\ndestination:/c\n\n\0", 3).expect("frames parse");
    assert_eq!(items.len(), 1);
}
