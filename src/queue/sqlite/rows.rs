//! Reading and writing the queue's rows in SQLite: [`Cell`]s bound to `?` placeholders, and
//! SQLite rows read as [`Row`]s. Which columns exist is said once, in `queue::columns`.

use std::sync::LazyLock;

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{AssertSqlSafe, Row as _, Sqlite, SqliteConnection, SqliteExecutor};

use super::db;
use crate::queue::audit::Event;
use crate::queue::columns::{self, Cell, Row};
use crate::queue::model::{Approval, QueueError, Request};

/// A SQLite row, read by column name.
pub struct Read<'a>(pub &'a SqliteRow);

impl Row for Read<'_> {
    fn text(&self, col: &str) -> Result<Option<String>, QueueError> {
        self.0.try_get(col).map_err(db)
    }
    fn int(&self, col: &str) -> Result<Option<i64>, QueueError> {
        self.0.try_get(col).map_err(db)
    }
}

fn placeholder(_: usize) -> String {
    "?".into()
}

static INSERT_REQUEST: LazyLock<String> =
    LazyLock::new(|| columns::insert_sql("requests", columns::REQUEST_INSERT, placeholder));
static UPDATE_REQUEST: LazyLock<String> =
    LazyLock::new(|| columns::update_sql(columns::REQUEST_UPDATE, placeholder));
static INSERT_APPROVAL: LazyLock<String> = LazyLock::new(|| {
    columns::insert_sql("approvals", columns::APPROVAL, placeholder)
        + " ON CONFLICT (request_id, public_key) DO NOTHING"
});
static INSERT_EVENT: LazyLock<String> =
    LazyLock::new(|| columns::insert_sql("audit", columns::EVENT, placeholder));

/// `sql` with `cells` bound in order.
fn bound<'q>(sql: &'q str, cells: Vec<Cell>) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for c in cells {
        q = match c {
            Cell::Text(t) => q.bind(t),
            Cell::Int(i) => q.bind(i),
        };
    }
    q
}

pub async fn get(conn: impl SqliteExecutor<'_>, id: &str) -> Result<Option<Request>, QueueError> {
    let row = sqlx::query("SELECT * FROM requests WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.map(|r| Request::from_row(&Read(&r))).transpose()
}

pub fn requests_of(rows: Vec<SqliteRow>) -> Result<Vec<Request>, QueueError> {
    rows.iter().map(|r| Request::from_row(&Read(r))).collect()
}

pub fn approvals(rows: Vec<SqliteRow>) -> Result<Vec<Approval>, QueueError> {
    rows.iter().map(|r| Approval::from_row(&Read(r))).collect()
}

pub fn events(rows: Vec<SqliteRow>) -> Result<Vec<Event>, QueueError> {
    rows.iter().map(|r| Event::from_row(&Read(r))).collect()
}

/// Run `sql` with `cells`; how many rows it changed.
async fn exec(conn: &mut SqliteConnection, sql: &str, cells: Vec<Cell>) -> Result<u64, QueueError> {
    Ok(bound(sql, cells)
        .execute(conn)
        .await
        .map_err(db)?
        .rows_affected())
}

pub async fn insert_request(conn: &mut SqliteConnection, r: &Request) -> Result<(), QueueError> {
    exec(conn, &INSERT_REQUEST, r.insert_cells())
        .await
        .map(drop)
}

/// Write back every column a compare-and-set may change.
pub async fn update_request(conn: &mut SqliteConnection, r: &Request) -> Result<(), QueueError> {
    let mut cells = r.update_cells();
    cells.push(Cell::Text(Some(r.id.clone())));
    exec(conn, &UPDATE_REQUEST, cells).await.map(drop)
}

pub async fn approval_count(conn: &mut SqliteConnection, id: &str) -> Result<usize, QueueError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM approvals WHERE request_id = ?")
        .bind(id)
        .fetch_one(conn)
        .await
        .map_err(db)?;
    Ok(n as usize)
}

/// Insert an approval; false when this key already approved the request.
pub async fn insert_approval(
    conn: &mut SqliteConnection,
    a: &Approval,
) -> Result<bool, QueueError> {
    Ok(exec(conn, &INSERT_APPROVAL, a.cells()).await? == 1)
}

pub async fn insert_event(conn: &mut SqliteConnection, e: &Event) -> Result<(), QueueError> {
    exec(conn, &INSERT_EVENT, e.cells()).await.map(drop)
}
