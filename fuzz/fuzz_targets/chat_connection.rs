//! A whole STOMP connection to the chat: arbitrary bytes from a client into the real driver
//! (`run_connection` over the in-memory transport), with the real `ChatConnection`, room
//! writers and memory stores behind it, on a runtime whose clock only moves when everything
//! waits (heart-beats and write timeouts then fire at once).
//!
//! Input: a control byte (bit 0: first send a valid CONNECT with the caller's token, so the
//! rest of the input starts in a session), then steps of a control byte and a chunk of up to
//! 63 bytes; after a chunk, bit 6 lets half a second pass and bit 7 sends a transport-level
//! ping. At the end the server is shut down and the client reads to the close.
//!
//! What must hold: no panic; the connection ends once the server shuts down; everything the
//! server wrote is valid STOMP; the first frame is CONNECTED or ERROR; nothing follows an
//! ERROR; each MESSAGE names its destination, subscription and id, each RECEIPT its receipt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtchat_driver::{DriverConfig, Shutdown, memory_pair, run_connection};
use rtchat_fuzz::{CLIENT, service, token};
use rtchat_stomp::{Command, Item, Limits, Parser};
use std::time::Duration;

/// Longer than any deadline of the driver (heart-beats, write timeout, shutdown drain).
const END_WITHIN: Duration = Duration::from_secs(3600);

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused current-thread runtime");
    let output = runtime.block_on(async {
        let service = service().await;
        let shutdown = Shutdown::new();
        // Big enough that the client never waits to send and the server never waits to write
        // (a full queue would only end in the write timeout).
        let (transport, mut client) = memory_pair(1 << 14);
        let signal = shutdown.signal();
        let server = tokio::spawn(async move {
            run_connection(transport, &service, CLIENT.ip(), &DriverConfig::default(), signal)
                .await;
        });
        if control & 1 != 0 {
            let connect = format!(
                "CONNECT\naccept-version:1.2\nhost:rtchat\nheart-beat:1000,1000\nAuthorization:Bearer {}\n\n\0",
                token()
            );
            client.send(connect).await;
        }
        while let Some((&step, tail)) = rest.split_first() {
            let len = usize::from(step & 0x3f).min(tail.len());
            let (chunk, tail) = tail.split_at(len);
            rest = tail;
            if !client.send(chunk.to_vec()).await {
                break;
            }
            if step & 0x40 != 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else {
                tokio::task::yield_now().await;
            }
            if step & 0x80 != 0 && !client.ping().await {
                break;
            }
        }
        shutdown.trigger();
        let mut output = Vec::new();
        let read = async {
            while let Some(bytes) = client.recv().await {
                output.extend_from_slice(&bytes);
            }
        };
        tokio::time::timeout(END_WITHIN, read)
            .await
            .expect("the connection ends once the server shuts down");
        tokio::time::timeout(END_WITHIN, server)
            .await
            .expect("the connection's task ends")
            .expect("the connection's task does not panic");
        output
    });
    check_server_stream(&output);
});

/// What the server wrote, read as a client would.
fn check_server_stream(output: &[u8]) {
    let shown = || String::from_utf8_lossy(output).into_owned();
    let mut parser = Parser::new(Limits {
        max_frame_bytes: 1 << 24,
        max_headers: 64,
        max_header_line_bytes: 1 << 16,
        max_body_bytes: 1 << 24,
    });
    parser.feed(output);
    let mut frames = 0;
    let mut ended = false;
    while let Some(item) = parser
        .next_item()
        .unwrap_or_else(|error| panic!("the server wrote invalid STOMP ({error}): {}", shown()))
    {
        let Item::Frame(frame) = item else {
            continue;
        };
        assert!(!ended, "a frame after an ERROR: {}", shown());
        if frames == 0 {
            assert!(
                matches!(frame.command, Command::Connected | Command::Error),
                "the first frame is {}: {}",
                frame.command,
                shown()
            );
        }
        frames += 1;
        match frame.command {
            Command::Error => ended = true,
            Command::Message => {
                for header in ["destination", "subscription", "message-id"] {
                    assert!(
                        frame.get(header).is_some(),
                        "MESSAGE without {header}: {}",
                        shown()
                    );
                }
            }
            Command::Receipt => {
                assert!(
                    frame.get("receipt-id").is_some(),
                    "RECEIPT without receipt-id: {}",
                    shown()
                );
            }
            Command::Connected => assert_eq!(frames, 1, "a second CONNECTED: {}", shown()),
            other => panic!("the server sent a client frame {other}: {}", shown()),
        }
    }
    assert_eq!(
        parser.buffered(),
        0,
        "the server left half a frame: {}",
        shown()
    );
}
