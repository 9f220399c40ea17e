//! One test per transcript: it runs on every adapter combination, every combination must
//! record the same conversation, and that conversation is the transcript's insta snapshot
//! (`conformance/tests/snapshots/<name>.snap`).
//!
//! New transcript: add the file, add a line to `transcripts!` below, then
//! `INSTA_UPDATE=always cargo test -p rtchat-conformance` (or `cargo insta review`) and read
//! the new snapshot before committing it.

use rtchat_conformance::{all_combinations, load_named, run, transcript_names};

macro_rules! transcripts {
    ($($(#[$attribute:meta])* $test:ident => $name:literal,)*) => {
        /// Every transcript that has a test.
        const TESTED: &[&str] = &[$($name),*];
        $(
            $(#[$attribute])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                check($name).await;
            }
        )*
    };
}

transcripts! {
    connect_with_a_good_token => "01-connect",
    connect_without_a_token => "02-connect-missing-token",
    connect_with_a_bad_token => "03-connect-bad-token",
    connect_with_an_expired_token => "04-connect-expired-token",
    stomp_command_instead_of_connect => "05-stomp-command",
    version_negotiation_picks_1_1 => "06-version-1-1",
    version_negotiation_without_accept_version_is_1_0 => "07-version-1-0",
    version_negotiation_with_nothing_in_common => "08-version-none-in-common",
    heart_beat_negotiation => "09-heart-beat-negotiation",
    server_heart_beats_arrive => "10-heart-beat-server-sends",
    receipt_for_subscribe => "11-subscribe-receipt",
    unsubscribe_stops_messages => "12-unsubscribe",
    chat_broadcast_to_two_sessions => "13-chat-broadcast",
    receipt_for_a_chat_send => "14-chat-receipt",
    error_queue_unknown_room => "15-error-unknown-room",
    error_queue_empty_and_blank_messages => "16-error-empty-message",
    error_queue_too_long_message => "17-error-too-long",
    error_queue_bad_json => "18-error-bad-json",
    send_to_a_subscription_destination_is_forbidden => "19-forbidden-destination",
    unknown_destinations => "20-unknown-destination",
    history_reply_on_subscribe => "21-history",
    since_id_recovery => "22-since-id",
    presence_and_entry_counts => "23-presence",
    frame_before_connect => "24-frame-before-connect",
    malformed_frames => "25-malformed-frame",
    oversized_frame => "26-oversized-frame",
    transaction_commit_and_abort => "27-transactions",
    transaction_unknown => "28-transaction-unknown",
    ack_modes => "29-ack-modes",
    ack_of_an_unknown_id => "30-ack-unknown",
    disconnect_with_receipt => "31-disconnect",
    duplicate_subscription_id => "32-duplicate-subscription",
    rate_limit => "33-rate-limit",
    split_and_pipelined_frames => "34-chunking",
    subscription_edge_cases => "35-subscription-edge-cases",
    refused_subscription_id_is_reusable => "36-refused-subscription-id-reusable",
    since_seq_recovery => "37-since-seq",
    idempotent_send_with_a_message_key => "38-message-key",
    failed_send_without_an_error_queue_gets_an_error_frame => "39-send-error-without-error-queue",
    disconnect_receipt_comes_after_the_sends_before_it => "40-disconnect-after-send",
    refused_token_refreshes_leave_the_session_open => "41-token-refresh-refused",
}

/// Runs `name` on every combination, checks they agree, and snapshots the result.
async fn check(name: &str) {
    let transcript = load_named(name).unwrap_or_else(|error| panic!("{error}"));
    let mut recordings = Vec::new();
    let mut failures = Vec::new();
    for combination in all_combinations() {
        match run(combination.as_ref(), &transcript).await {
            Ok(recorded) => recordings.push((combination.name(), recorded)),
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} combinations failed:\n\n{}",
        failures.len(),
        failures.len() + recordings.len(),
        failures.join("\n\n==========\n\n")
    );
    let (reference_name, reference) = &recordings[0];
    for (other_name, other) in &recordings[1..] {
        assert!(
            other == reference,
            "{name}: the combinations disagree\n{}",
            first_difference(reference_name, reference, other_name, other)
        );
    }
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        description => transcript.description.clone(),
        omit_expression => true,
    }, {
        insta::allow_duplicates! {
            for (_, recorded) in &recordings {
                insta::assert_snapshot!(name, recorded);
            }
        }
    });
}

/// The first line where two recordings differ, with a little context.
fn first_difference(a_name: &str, a: &str, b_name: &str, b: &str) -> String {
    let a_lines: Vec<&str> = a.lines().collect();
    let b_lines: Vec<&str> = b.lines().collect();
    let at = a_lines
        .iter()
        .zip(&b_lines)
        .position(|(x, y)| x != y)
        .unwrap_or(a_lines.len().min(b_lines.len()));
    let from = at.saturating_sub(8);
    let excerpt = |lines: &[&str]| {
        lines
            .get(from..(at + 8).min(lines.len()))
            .unwrap_or(&[])
            .join("\n")
    };
    format!(
        "first difference at recorded line {}\n--- {a_name}\n{}\n--- {b_name}\n{}",
        at + 1,
        excerpt(&a_lines),
        excerpt(&b_lines)
    )
}

#[test]
fn every_transcript_file_has_a_test() {
    let files = transcript_names().expect("the transcripts directory is readable");
    let mut tested: Vec<&str> = TESTED.to_vec();
    tested.sort_unstable();
    assert_eq!(
        files, tested,
        "transcripts! must list every file in conformance/transcripts"
    );
    assert!(
        files.len() >= 25,
        "the suite promises at least 25 transcripts"
    );
}

#[test]
fn every_transcript_parses() {
    for name in TESTED {
        load_named(name).unwrap_or_else(|error| panic!("{error}"));
    }
}

/// The example in docs/conformance.md is a transcript that passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_example_runs() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/conformance.md"
    ))
    .expect("docs/conformance.md is readable");
    let example = docs
        .split("## An example")
        .nth(1)
        .and_then(|section| section.split("```").nth(1))
        .expect("docs/conformance.md has a fenced example under '## An example'");
    let transcript =
        rtchat_conformance::transcript::parse("docs-example", example.trim_start_matches('\n'))
            .unwrap_or_else(|error| panic!("{error}"));
    for combination in all_combinations() {
        if let Err(failure) = run(combination.as_ref(), &transcript).await {
            panic!("{failure}");
        }
    }
}
