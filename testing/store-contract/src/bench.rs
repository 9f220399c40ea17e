//! The criterion benchmark every store adapter runs: `append` into one room from one writer,
//! by batch size (the room writers' group commit hands the store batches of whatever waited).

use crate::Store;
use crate::helpers::{create_rooms, new_message, room_id};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use tokio::runtime::Runtime;

/// Batch sizes measured: one SEND alone, and what a busy room's writer takes at once.
pub const BATCH_SIZES: [usize; 4] = [1, 16, 64, 256];

/// Measures `store.append` of batches of each of [`BATCH_SIZES`] into one room, on `runtime`,
/// as the group `group` (criterion reports messages per second: one element is one message).
pub fn append_by_batch_size<S: Store>(
    criterion: &mut Criterion,
    group: &str,
    runtime: &Runtime,
    store: S,
) {
    runtime.block_on(create_rooms(&store, &["bench"]));
    let room = room_id("bench");
    let mut group = criterion.benchmark_group(group);
    // Every sample commits to a real database: a few seconds per size are plenty.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in BATCH_SIZES {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |bench, &size| {
            bench.iter(|| {
                let batch = (0..size)
                    .map(|n| new_message("bench", &format!("benchmark message number {n}")))
                    .collect();
                runtime
                    .block_on(store.append(&room, batch))
                    .expect("the store takes the batch")
            });
        });
    }
    group.finish();
}
