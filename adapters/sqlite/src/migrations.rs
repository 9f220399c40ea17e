//! The embedded migrations and their runner.

use crate::backend;
use rtchat_chat::BackendError;
use sqlx::SqlitePool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::future::Future;
use std::pin::Pin;

/// Every migration, in version order: `(version, description, SQL)`. A new migration is a new
/// file `migrations/NNNN_description.sql` and a new line here; released files never change
/// (the migrator checks their checksums).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "room expiry",
        include_str!("../migrations/0002_room_expiry.sql"),
    ),
];

/// The migrations compiled into this crate, as a source for sqlx's [`Migrator`].
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        description.into(),
                        MigrationType::Simple,
                        sql.into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Applies the migrations the database has not applied yet, each in a transaction, on
/// `writer` (the store's write connection, so no append runs in between).
pub(crate) async fn run(writer: &SqlitePool) -> Result<(), BackendError> {
    let migrator = Migrator::new(Embedded)
        .await
        .map_err(backend("load migrations"))?;
    migrator.run(writer).await.map_err(backend("migrate"))
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_increase_and_no_file_is_empty() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "versions must increase");
        }
        for (version, _, sql) in MIGRATIONS {
            assert!(*version > 0 && !sql.trim().is_empty());
        }
    }
}
