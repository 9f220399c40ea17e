//! `append` throughput into one room from one writer, by batch size, on PostgreSQL: the
//! database `DATABASE_URL` names, or a throwaway one (`rtchat-test-services`).
//!
//! `cargo bench -p rtchat-postgres --bench append`

use criterion::{Criterion, criterion_group, criterion_main};
use rtchat_postgres::PostgresStore;
use rtchat_test_services::shared_database_url;

fn append(criterion: &mut Criterion) {
    let Some(url) = shared_database_url("append bench") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let schema = format!("rtchat_bench_{}", std::process::id());
    let store = runtime.block_on(async {
        let store = PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
    });
    rtchat_store_contract::bench::append_by_batch_size(
        criterion,
        "postgres_append",
        &runtime,
        store.clone(),
    );
    runtime.block_on(async {
        store.pool().close().await;
        if let Err(error) = PostgresStore::drop_schema(&url, &schema).await {
            eprintln!("could not drop the bench schema {schema}: {error}");
        }
    });
}

criterion_group!(benches, append);
criterion_main!(benches);
