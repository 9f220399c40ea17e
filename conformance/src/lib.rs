//! # rtchat-conformance
//!
//! STOMP transcripts (`conformance/transcripts/*.stomp`: client frames in, expected server
//! frames out) run against every adapter combination. Each run checks the transcript's
//! expectations and records the whole conversation, normalised; the test suite
//! (`conformance/tests/transcripts.rs`) snapshots that recording with insta under the
//! transcript's name, once per combination, so every combination must produce the same text.
//! The format is documented in `docs/conformance.md`.
//!
//! The pieces, in the order a run uses them:
//! - [`transcript`]: parses a file into steps;
//! - [`combination`]: starts a node and connects clients (one implementation per adapter
//!   combination);
//! - [`stream`]: splits what the server sends into frames and heart-beats;
//! - [`normalize`]: replaces volatile values (session, ids, timestamps) with placeholders;
//! - [`runner`]: executes the steps and records the conversation.

pub mod combination;
pub mod normalize;
pub mod runner;
pub mod sockjs;
pub mod stream;
pub mod tokens;
pub mod transcript;
pub mod webtransport;

pub use combination::{Combination, all as all_combinations};
pub use runner::{Failure, run};
pub use transcript::{Transcript, load};

use std::path::PathBuf;

/// The directory holding the transcripts.
pub fn transcripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("transcripts")
}

/// The transcript called `name` (`conformance/transcripts/<name>.stomp`).
pub fn load_named(name: &str) -> Result<Transcript, transcript::ParseError> {
    load(&transcripts_dir().join(format!("{name}.stomp")))
}

/// The names of every transcript file, sorted.
pub fn transcript_names() -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(transcripts_dir())? {
        let path = entry?.path();
        if let Some(stem) = path
            .file_stem()
            .filter(|_| path.extension().is_some_and(|ext| ext == "stomp"))
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}
