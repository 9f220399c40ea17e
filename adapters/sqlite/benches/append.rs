//! `append` throughput into one room from one writer, by batch size, on a SQLite file in a
//! temporary directory (WAL, `synchronous=NORMAL`, as the server opens it).
//!
//! `cargo bench -p rtchat-sqlite --bench append`

use criterion::{Criterion, criterion_group, criterion_main};
use rtchat_sqlite::SqliteStore;

fn append(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = runtime.block_on(async {
        let store = SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        store
    });
    rtchat_store_contract::bench::append_by_batch_size(
        criterion,
        "sqlite_append",
        &runtime,
        store.clone(),
    );
    runtime.block_on(async {
        if let Err(error) = store.close().await {
            eprintln!("could not close the bench store: {error}");
        }
    });
}

criterion_group!(benches, append);
criterion_main!(benches);
