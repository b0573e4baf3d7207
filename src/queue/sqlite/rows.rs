//! The SQLite rows and the statements that read and write them. Rows stay here; the rest of
//! airlock sees [`Request`], [`Approval`] and [`Event`].

use serde_json::Value;
use sqlx::{SqliteConnection, SqliteExecutor};

use super::state;
use crate::queue::audit::Event;
use crate::queue::model::{Approval, Phase, QueueError, Request};

#[derive(Debug, sqlx::FromRow)]
pub struct RequestRow {
    pub id: String,
    pub tool: String,
    pub environment: String,
    pub account: String,
    pub region: String,
    pub resource_id: String,
    pub resource_arn: String,
    pub call_json: String,
    pub call_hash: String,
    pub policy_hash: String,
    pub rule: String,
    pub approvers_required: i64,
    pub cooldown_ms: i64,
    pub reason: String,
    pub client_name: String,
    pub client_version: String,
    pub session_id: String,
    pub resource_json: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub not_before: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub attempts: i64,
    pub phase: String,
    pub backup_id: Option<String>,
    pub backup_copy_id: Option<String>,
    pub outcome: Option<String>,
}

impl RequestRow {
    pub fn into_request(self) -> Result<Request, QueueError> {
        Ok(Request {
            state: state(&self.state)?,
            phase: Phase::parse(&self.phase),
            // An outcome that is not JSON (written outside airlock) is kept as text.
            outcome: self
                .outcome
                .map(|o| serde_json::from_str(&o).unwrap_or(Value::String(o))),
            id: self.id,
            tool: self.tool,
            environment: self.environment,
            account: self.account,
            region: self.region,
            resource_id: self.resource_id,
            resource_arn: self.resource_arn,
            call_json: self.call_json,
            call_hash: self.call_hash,
            policy_hash: self.policy_hash,
            rule: self.rule,
            approvers_required: self.approvers_required,
            cooldown_ms: self.cooldown_ms,
            reason: self.reason,
            client_name: self.client_name,
            client_version: self.client_version,
            session_id: self.session_id,
            resource_json: self.resource_json,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            not_before: self.not_before,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            attempts: self.attempts,
            backup_id: self.backup_id,
            backup_copy_id: self.backup_copy_id,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct ApprovalRow {
    pub request_id: String,
    pub approver: String,
    pub public_key: String,
    pub approved_at: i64,
    pub not_before: i64,
    pub signature: String,
}

impl From<ApprovalRow> for Approval {
    fn from(a: ApprovalRow) -> Self {
        Approval {
            request_id: a.request_id,
            approver: a.approver,
            public_key: a.public_key,
            approved_at: a.approved_at,
            not_before: a.not_before,
            signature: a.signature,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub request_id: Option<String>,
    pub actor: String,
    pub event: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<EventRow> for Event {
    fn from(e: EventRow) -> Self {
        Event {
            seq: e.seq,
            at: e.at,
            request_id: e.request_id,
            actor: e.actor,
            event: e.event,
            detail: e.detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

pub async fn get(conn: impl SqliteExecutor<'_>, id: &str) -> Result<Option<Request>, sqlx::Error> {
    let row: Option<RequestRow> = sqlx::query_as("SELECT * FROM requests WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        r.into_request()
            .map_err(|e| sqlx::Error::Decode(e.to_string().into()))
    })
    .transpose()
}

pub async fn insert_request(conn: &mut SqliteConnection, r: &Request) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO requests (id, tool, environment, account, region, resource_id, resource_arn, call_json, call_hash,
           policy_hash, rule, approvers_required, cooldown_ms, reason, client_name, client_version, session_id,
           resource_json, state, created_at, updated_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.id)
    .bind(&r.tool)
    .bind(&r.environment)
    .bind(&r.account)
    .bind(&r.region)
    .bind(&r.resource_id)
    .bind(&r.resource_arn)
    .bind(&r.call_json)
    .bind(&r.call_hash)
    .bind(&r.policy_hash)
    .bind(&r.rule)
    .bind(r.approvers_required)
    .bind(r.cooldown_ms)
    .bind(&r.reason)
    .bind(&r.client_name)
    .bind(&r.client_version)
    .bind(&r.session_id)
    .bind(&r.resource_json)
    .bind(r.state.as_str())
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Write back every column a compare-and-set may change.
pub async fn update_request(conn: &mut SqliteConnection, r: &Request) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE requests SET state = ?, updated_at = ?, expires_at = ?, not_before = ?, lease_owner = ?,
           lease_until = ?, attempts = ?, phase = ?, backup_id = ?, backup_copy_id = ?, outcome = ?
         WHERE id = ?",
    )
    .bind(r.state.as_str())
    .bind(r.updated_at)
    .bind(r.expires_at)
    .bind(r.not_before)
    .bind(&r.lease_owner)
    .bind(r.lease_until)
    .bind(r.attempts)
    .bind(r.phase.as_str())
    .bind(&r.backup_id)
    .bind(&r.backup_copy_id)
    .bind(r.outcome.as_ref().map(Value::to_string))
    .bind(&r.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn approval_count(conn: &mut SqliteConnection, id: &str) -> Result<usize, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM approvals WHERE request_id = ?")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(n as usize)
}

/// Insert an approval; false when this key already approved the request.
pub async fn insert_approval(
    conn: &mut SqliteConnection,
    a: &Approval,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO approvals (request_id, approver, public_key, approved_at, not_before, signature)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, public_key) DO NOTHING",
    )
    .bind(&a.request_id)
    .bind(&a.approver)
    .bind(&a.public_key)
    .bind(a.approved_at)
    .bind(a.not_before)
    .bind(&a.signature)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn insert_event(conn: &mut SqliteConnection, e: &Event) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit (seq, at, request_id, actor, event, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(e.seq)
        .bind(e.at)
        .bind(&e.request_id)
        .bind(&e.actor)
        .bind(&e.event)
        .bind(&e.detail)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(conn)
        .await?;
    Ok(())
}
