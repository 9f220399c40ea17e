//! The embedded migrations and their runner.

use crate::backend;
use rtchat_chat::BackendError;
use sqlx::PgPool;
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
        "room log",
        include_str!("../migrations/0002_room_log.sql"),
    ),
    (
        3,
        "log epoch",
        include_str!("../migrations/0003_log_epoch.sql"),
    ),
    (
        4,
        "room expiry",
        include_str!("../migrations/0004_room_expiry.sql"),
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

/// Applies the migrations `pool`'s database has not applied yet, on one connection without
/// the pool's statement timeout (a future migration may rewrite a large table).
pub(crate) async fn run(pool: &PgPool) -> Result<(), BackendError> {
    let migrator = Migrator::new(Embedded)
        .await
        .map_err(backend("load migrations"))?;
    let mut connection = pool.acquire().await.map_err(backend("migrate"))?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *connection)
        .await
        .map_err(backend("migrate"))?;
    let outcome = migrator
        .run_direct(&mut *connection)
        .await
        .map_err(backend("migrate"));
    // Back to the connection's own setting before it returns to the pool; a connection that
    // cannot be reset is closed instead.
    if sqlx::query("RESET statement_timeout")
        .execute(&mut *connection)
        .await
        .is_err()
    {
        connection.detach();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_increase_and_match_file_names() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "versions must increase");
        }
        for (version, _, sql) in MIGRATIONS {
            assert!(*version > 0 && !sql.trim().is_empty());
        }
    }
}
