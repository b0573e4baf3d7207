//! The embedded backend: one SQLite file (WAL, busy timeout, foreign keys), migrations from
//! `migrations/sqlite/` embedded at build time. Every write is one `BEGIN IMMEDIATE`
//! transaction, which takes the write lock at once, so a compare-and-set, the chain head it
//! reads and the events it appends cannot interleave with another writer's. The SQL and the
//! row types live here and nowhere else.

mod rows;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::audit::{self, Event};
use super::model::{Approval, QueueError, Request};
use super::store::{Answer, Applied, Backend, Draft, Expect, Filter, Mark, Raised, Store, Write};
use crate::BoxFuture;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The driver's error, as the queue's.
fn db(e: sqlx::Error) -> QueueError {
    QueueError::Db(e.to_string())
}

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating it if needed) and migrate the queue file.
    pub async fn open(path: &Path) -> Result<Self, QueueError> {
        let err = |m: String| QueueError::Open {
            path: path.display().to_string(),
            message: m,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| err(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| err(e.to_string()))?;
        MIGRATOR.run(&pool).await.map_err(|e| err(e.to_string()))?;
        Ok(Self { pool })
    }

    /// A write transaction that takes the write lock at once, so read-then-write sequences
    /// (the audit chain's head, compare-and-set) cannot interleave.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, QueueError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    /// An empty write transaction (the benchmark's floor for one queue write).
    pub async fn empty_write(&self) -> Result<(), QueueError> {
        self.begin().await?.commit().await.map_err(db)
    }

    /// The audit chain's head (seq, hash): one indexed read (the benchmark's floor for a read).
    pub async fn chain_head(&self) -> Result<Option<(i64, String)>, QueueError> {
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn do_insert(&self, r: &Request, event: &Draft) -> Result<(), QueueError> {
        let mut tx = self.begin().await?;
        rows::insert_request(&mut tx, r).await?;
        append(&mut tx, std::slice::from_ref(event)).await?;
        tx.commit().await.map_err(db)
    }

    async fn do_apply(&self, id: &str, expect: &Expect, w: &Write) -> Result<Applied, QueueError> {
        let mut tx = self.begin().await?;
        let Some(current) = rows::get(&mut *tx, id).await? else {
            return Ok(Applied::Conflict(None));
        };
        let approvals = match expect.approvals {
            Some(_) => Some(rows::approval_count(&mut tx, id).await?),
            None => None,
        };
        if !expect.matches(&current, approvals) {
            return Ok(Applied::Conflict(Some(Box::new(current))));
        }
        if let Some(a) = &w.approval
            && !rows::insert_approval(&mut tx, a).await?
        {
            return Ok(Applied::Conflict(Some(Box::new(current))));
        }
        let next = w.change.applied(&current);
        rows::update_request(&mut tx, &next).await?;
        append(&mut tx, &w.events).await?;
        tx.commit().await.map_err(db)?;
        Ok(Applied::Done(Box::new(next)))
    }

    async fn do_list(&self, f: Filter) -> Result<Vec<Request>, QueueError> {
        let found = match (f.state, f.due_at, f.expired_at) {
            (_, Some(now), _) => sqlx::query(
                "SELECT * FROM requests WHERE state = 'approved' AND not_before <= ? AND expires_at > ?
                 ORDER BY not_before LIMIT ?",
            )
            .bind(now)
            .bind(now)
            .bind(f.limit.unwrap_or(32) as i64)
            .fetch_all(&self.pool)
            .await,
            (_, _, Some(now)) => sqlx::query(
                "SELECT * FROM requests WHERE state IN ('pending', 'approved') AND expires_at <= ?
                 ORDER BY created_at",
            )
            .bind(now)
            .fetch_all(&self.pool)
            .await,
            (Some(s), _, _) => {
                sqlx::query("SELECT * FROM requests WHERE state = ? ORDER BY created_at")
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            (None, _, _) => sqlx::query("SELECT * FROM requests ORDER BY created_at")
                .fetch_all(&self.pool)
                .await,
        }
        .map_err(db)?;
        rows::requests_of(found)
    }

    async fn do_set_mark(
        &self,
        policy: &str,
        expected: Option<&Mark>,
        mark: &Mark,
    ) -> Result<bool, QueueError> {
        let now = mark.seen_at;
        let n = match expected {
            None => sqlx::query(
                "INSERT INTO policy_signature_high (policy_path, signed_at_ms, signer, manifest_hash, seen_at)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (policy_path) DO NOTHING",
            )
            .bind(policy)
            .bind(mark.signed_at_ms)
            .bind(&mark.signer)
            .bind(&mark.manifest_hash)
            .bind(now),
            Some(old) => sqlx::query(
                "UPDATE policy_signature_high SET signed_at_ms = ?, signer = ?, manifest_hash = ?, seen_at = ?
                 WHERE policy_path = ? AND signed_at_ms = ?",
            )
            .bind(mark.signed_at_ms)
            .bind(&mark.signer)
            .bind(&mark.manifest_hash)
            .bind(now)
            .bind(policy)
            .bind(old.signed_at_ms),
        }
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }
}

/// Seal `events` onto the chain head, inside the caller's (IMMEDIATE) transaction.
async fn append(conn: &mut SqliteConnection, events: &[Draft]) -> Result<(), QueueError> {
    let mut head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    for d in events {
        let e = audit::seal(head.as_ref().map(|(s, h)| (*s, h.as_str())), d);
        rows::insert_event(&mut *conn, &e).await?;
        head = Some((e.seq, e.hash));
    }
    Ok(())
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn insert<'a>(&'a self, r: &'a Request, event: &'a Draft) -> Answer<'a, ()> {
        Box::pin(self.do_insert(r, event))
    }

    fn get<'a>(&'a self, id: &'a str) -> Answer<'a, Option<Request>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            rows::get(&mut *conn, id).await
        })
    }

    fn list(&self, filter: Filter) -> Answer<'_, Vec<Request>> {
        Box::pin(self.do_list(filter))
    }

    fn approvals<'a>(&'a self, id: &'a str) -> Answer<'a, Vec<Approval>> {
        Box::pin(async move {
            let found =
                sqlx::query("SELECT * FROM approvals WHERE request_id = ? ORDER BY approved_at")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?;
            rows::approvals(found)
        })
    }

    fn signatures(&self) -> Answer<'_, Vec<(String, String)>> {
        Box::pin(async move {
            sqlx::query_as("SELECT request_id, signature FROM approvals")
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn apply<'a>(
        &'a self,
        id: &'a str,
        expect: &'a Expect,
        write: &'a Write,
    ) -> Answer<'a, Applied> {
        Box::pin(self.do_apply(id, expect, write))
    }

    fn append<'a>(&'a self, events: &'a [Draft]) -> Answer<'a, ()> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            append(&mut tx, events).await?;
            tx.commit().await.map_err(db)
        })
    }

    fn events(&self) -> Answer<'_, Vec<Event>> {
        Box::pin(async move {
            let found = sqlx::query("SELECT * FROM audit ORDER BY seq")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            rows::events(found)
        })
    }

    fn mark<'a>(&'a self, policy: &'a str) -> Answer<'a, Option<Mark>> {
        Box::pin(async move {
            let row: Option<(i64, String, String, i64)> = sqlx::query_as(
                "SELECT signed_at_ms, signer, manifest_hash, seen_at FROM policy_signature_high WHERE policy_path = ?",
            )
            .bind(policy)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            Ok(
                row.map(|(signed_at_ms, signer, manifest_hash, seen_at)| Mark {
                    signed_at_ms,
                    signer,
                    manifest_hash,
                    seen_at,
                }),
            )
        })
    }

    fn set_mark<'a>(&'a self, policy: &'a str, from: Option<&'a Mark>, to: &'a Mark) -> Raised<'a> {
        Box::pin(self.do_set_mark(policy, from, to))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }
}

#[cfg(test)]
mod tests;
