//! The store contract every store adapter runs: the checks of [`MessageStore`] and
//! [`RoomStore`] (documented in `core/chat/src/ports.rs` and `docs/adapters.md`) that hold for
//! any store, written once, generic over the store.
//!
//! An adapter's test file wraps each check in a `#[tokio::test]` of the same name that hands
//! it a fresh, migrated, empty store, so `cargo test` reports the contract per adapter. What
//! only one adapter has (its schema, migrations, files, fault injection through its SQL) stays
//! in that adapter's tests, which may use the [`helpers`] too.
//!
//! Every check wants a fresh, migrated, empty store of its own (the cross-check also expects
//! its ids to start at 1). The concurrent ones want a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread", worker_threads = 4)]`), so their tasks overlap.
//!
//! The room expiry checks let a few tenths of a second of real time pass: activity is
//! measured by the store's own clock.
//!
//! Some checks take what the traits cannot give: the store's clamp of query limits, or how
//! many message rows it holds whatever their room (a refused batch must leave none, even
//! where no read through the traits would find them).

pub mod bench;
pub mod helpers;

mod concurrent;
mod cross_check;
mod expiry;
mod log;
mod rooms;

pub use concurrent::{
    concurrent_appenders_get_a_complete_log, concurrent_retries_of_the_same_keys_store_each_once,
    readers_following_the_log_never_miss_a_message,
};
pub use cross_check::answers_match_the_memory_store;
pub use expiry::{
    a_room_created_again_goes_on_from_its_last_seq,
    idle_rooms_are_those_with_no_recent_creation_or_message,
    removing_idle_rooms_takes_their_messages_and_nothing_else,
};
pub use log::{
    a_batch_for_an_unknown_room_fails_and_stores_nothing, a_batch_naming_another_room_is_refused,
    a_key_repeated_within_one_batch_is_stored_once,
    a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate,
    an_empty_batch_stores_nothing, append_assigns_ids_and_seqs_and_keeps_every_field,
    head_and_after_seq, limits_are_clamped, newest_before_and_after_page_through_three_pages,
    seqs_are_contiguous_per_room_and_ids_increase_with_them,
};
pub use rooms::rooms_create_duplicate_get_list_and_count;

use rtchat_chat::{MessageStore, RoomStore};

/// A store under test: both ports on one value, cheap to clone (a handle on shared state),
/// so checks can hand copies to concurrent tasks and to the adapter's own probes.
pub trait Store: MessageStore + RoomStore + Clone {}

impl<T: MessageStore + RoomStore + Clone> Store for T {}
