//! The memory store ([`MemoryStore`], rooms and messages together, as a node uses it) runs the
//! contract too, except the checks that need what only a database has (a clamp of query
//! limits, a count of message rows whatever their room).

use rtchat_memory::MemoryStore;
use rtchat_store_contract as contract;

#[tokio::test]
async fn append_assigns_ids_and_seqs_and_keeps_every_field() {
    contract::append_assigns_ids_and_seqs_and_keeps_every_field(MemoryStore::new()).await;
}

#[tokio::test]
async fn seqs_are_contiguous_per_room_and_ids_increase_with_them() {
    contract::seqs_are_contiguous_per_room_and_ids_increase_with_them(MemoryStore::new()).await;
}

#[tokio::test]
async fn an_empty_batch_stores_nothing() {
    contract::an_empty_batch_stores_nothing(MemoryStore::new()).await;
}

#[tokio::test]
async fn newest_before_and_after_page_through_three_pages() {
    contract::newest_before_and_after_page_through_three_pages(MemoryStore::new()).await;
}

#[tokio::test]
async fn head_and_after_seq() {
    contract::head_and_after_seq(MemoryStore::new()).await;
}

#[tokio::test]
async fn rooms_create_duplicate_get_list_and_count() {
    contract::rooms_create_duplicate_get_list_and_count(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate() {
    contract::a_known_key_from_the_same_author_in_the_same_room_is_a_duplicate(MemoryStore::new())
        .await;
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_is_stored_once() {
    contract::a_key_repeated_within_one_batch_is_stored_once(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_a_complete_log() {
    contract::concurrent_appenders_get_a_complete_log(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_the_same_keys_store_each_once() {
    contract::concurrent_retries_of_the_same_keys_store_each_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn idle_rooms_are_those_with_no_recent_creation_or_message() {
    contract::idle_rooms_are_those_with_no_recent_creation_or_message(MemoryStore::new()).await;
}

#[tokio::test]
async fn removing_idle_rooms_takes_their_messages_and_nothing_else() {
    contract::removing_idle_rooms_takes_their_messages_and_nothing_else(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_room_created_again_goes_on_from_its_last_seq() {
    contract::a_room_created_again_goes_on_from_its_last_seq(MemoryStore::new()).await;
}

#[tokio::test]
async fn answers_match_the_memory_store() {
    // The node's memory store answers as the two stores on their own do.
    contract::answers_match_the_memory_store(MemoryStore::new()).await;
}
