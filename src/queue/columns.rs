//! The queue's tables as columns, written once for every backend: which columns a request, an
//! approval and an audit event have, the values they are written with ([`Cell`]), and how
//! they are read back from any backend's row ([`Row`]). A backend only moves cells in its own
//! SQL dialect; it never names a field.

use serde_json::Value;

use super::audit::Event;
use super::model::{Approval, Phase, QueueError, Request, State};

/// A value to write: text or an integer, either of which may be NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
}

/// A row as a backend read it.
pub trait Row {
    fn text(&self, col: &str) -> Result<Option<String>, QueueError>;
    fn int(&self, col: &str) -> Result<Option<i64>, QueueError>;
}

fn missing(col: &str) -> QueueError {
    QueueError::Db(format!(
        "the queue holds a NULL `{col}`, which airlock never writes"
    ))
}

fn text(r: &impl Row, col: &str) -> Result<String, QueueError> {
    r.text(col)?.ok_or_else(|| missing(col))
}

fn int(r: &impl Row, col: &str) -> Result<i64, QueueError> {
    r.int(col)?.ok_or_else(|| missing(col))
}

fn t(s: &str) -> Cell {
    Cell::Text(Some(s.to_string()))
}

fn ot(s: &Option<String>) -> Cell {
    Cell::Text(s.clone())
}

/// The columns of `requests` a new request is inserted with, in order.
pub const REQUEST_INSERT: &[&str] = &[
    "id",
    "tool",
    "environment",
    "account",
    "region",
    "resource_id",
    "resource_arn",
    "call_json",
    "call_hash",
    "policy_hash",
    "rule",
    "approvers_required",
    "cooldown_ms",
    "reason",
    "client_name",
    "client_version",
    "session_id",
    "resource_json",
    "state",
    "created_at",
    "updated_at",
    "expires_at",
];

/// The columns of `requests` a compare-and-set may change, in order.
pub const REQUEST_UPDATE: &[&str] = &[
    "state",
    "updated_at",
    "expires_at",
    "not_before",
    "lease_owner",
    "lease_until",
    "attempts",
    "phase",
    "backup_id",
    "backup_copy_id",
    "outcome",
];

pub const APPROVAL: &[&str] = &[
    "request_id",
    "approver",
    "public_key",
    "approved_at",
    "not_before",
    "signature",
];

pub const EVENT: &[&str] = &[
    "seq",
    "at",
    "request_id",
    "actor",
    "event",
    "detail",
    "prev_hash",
    "hash",
];

impl Request {
    /// The cells of [`REQUEST_INSERT`].
    pub fn insert_cells(&self) -> Vec<Cell> {
        vec![
            t(&self.id),
            t(&self.tool),
            t(&self.environment),
            t(&self.account),
            t(&self.region),
            t(&self.resource_id),
            t(&self.resource_arn),
            t(&self.call_json),
            t(&self.call_hash),
            t(&self.policy_hash),
            t(&self.rule),
            Cell::Int(Some(self.approvers_required)),
            Cell::Int(Some(self.cooldown_ms)),
            t(&self.reason),
            t(&self.client_name),
            t(&self.client_version),
            t(&self.session_id),
            t(&self.resource_json),
            t(self.state.as_str()),
            Cell::Int(Some(self.created_at)),
            Cell::Int(Some(self.updated_at)),
            Cell::Int(Some(self.expires_at)),
        ]
    }

    /// The cells of [`REQUEST_UPDATE`].
    pub fn update_cells(&self) -> Vec<Cell> {
        vec![
            t(self.state.as_str()),
            Cell::Int(Some(self.updated_at)),
            Cell::Int(Some(self.expires_at)),
            Cell::Int(self.not_before),
            ot(&self.lease_owner),
            Cell::Int(self.lease_until),
            Cell::Int(Some(self.attempts)),
            t(self.phase.as_str()),
            ot(&self.backup_id),
            ot(&self.backup_copy_id),
            Cell::Text(self.outcome.as_ref().map(Value::to_string)),
        ]
    }

    /// A request as any backend read it.
    pub fn from_row(r: &impl Row) -> Result<Self, QueueError> {
        let state = text(r, "state")?;
        Ok(Request {
            id: text(r, "id")?,
            tool: text(r, "tool")?,
            environment: text(r, "environment")?,
            account: text(r, "account")?,
            region: text(r, "region")?,
            resource_id: text(r, "resource_id")?,
            resource_arn: text(r, "resource_arn")?,
            call_json: text(r, "call_json")?,
            call_hash: text(r, "call_hash")?,
            policy_hash: text(r, "policy_hash")?,
            rule: text(r, "rule")?,
            approvers_required: int(r, "approvers_required")?,
            cooldown_ms: int(r, "cooldown_ms")?,
            reason: text(r, "reason")?,
            client_name: text(r, "client_name")?,
            client_version: text(r, "client_version")?,
            session_id: text(r, "session_id")?,
            resource_json: text(r, "resource_json")?,
            state: State::parse(&state).ok_or_else(|| {
                QueueError::Db(format!("unknown request state `{state}` in the queue"))
            })?,
            created_at: int(r, "created_at")?,
            updated_at: int(r, "updated_at")?,
            expires_at: int(r, "expires_at")?,
            not_before: r.int("not_before")?,
            lease_owner: r.text("lease_owner")?,
            lease_until: r.int("lease_until")?,
            attempts: int(r, "attempts")?,
            phase: Phase::parse(&text(r, "phase")?),
            backup_id: r.text("backup_id")?,
            backup_copy_id: r.text("backup_copy_id")?,
            // An outcome that is not JSON (written outside airlock) is kept as text.
            outcome: r
                .text("outcome")?
                .map(|o| serde_json::from_str(&o).unwrap_or(Value::String(o))),
        })
    }
}

impl Approval {
    /// The cells of [`APPROVAL`].
    pub fn cells(&self) -> Vec<Cell> {
        vec![
            t(&self.request_id),
            t(&self.approver),
            t(&self.public_key),
            Cell::Int(Some(self.approved_at)),
            Cell::Int(Some(self.not_before)),
            t(&self.signature),
        ]
    }

    pub fn from_row(r: &impl Row) -> Result<Self, QueueError> {
        Ok(Approval {
            request_id: text(r, "request_id")?,
            approver: text(r, "approver")?,
            public_key: text(r, "public_key")?,
            approved_at: int(r, "approved_at")?,
            not_before: int(r, "not_before")?,
            signature: text(r, "signature")?,
        })
    }
}

impl Event {
    /// The cells of [`EVENT`].
    pub fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::Int(Some(self.seq)),
            Cell::Int(Some(self.at)),
            ot(&self.request_id),
            t(&self.actor),
            t(&self.event),
            t(&self.detail),
            t(&self.prev_hash),
            t(&self.hash),
        ]
    }

    pub fn from_row(r: &impl Row) -> Result<Self, QueueError> {
        Ok(Event {
            seq: int(r, "seq")?,
            at: int(r, "at")?,
            request_id: r.text("request_id")?,
            actor: text(r, "actor")?,
            event: text(r, "event")?,
            detail: text(r, "detail")?,
            prev_hash: text(r, "prev_hash")?,
            hash: text(r, "hash")?,
        })
    }
}

/// `INSERT INTO table (cols) VALUES (p(1), p(2), ...)`, with `p` the dialect's placeholder.
pub fn insert_sql(table: &str, cols: &[&str], p: impl Fn(usize) -> String) -> String {
    let values: Vec<String> = (1..=cols.len()).map(p).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        cols.join(", "),
        values.join(", ")
    )
}

/// `UPDATE requests SET col = p(1), ... WHERE id = p(n+1)`.
pub fn update_sql(cols: &[&str], p: impl Fn(usize) -> String) -> String {
    let sets: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = {}", p(i + 1)))
        .collect();
    format!(
        "UPDATE requests SET {} WHERE id = {}",
        sets.join(", "),
        p(cols.len() + 1)
    )
}
