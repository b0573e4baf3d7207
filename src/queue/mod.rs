//! The approval queue: requests bound to an exact call, the approvals over them, and the
//! hash-chained audit log, in one SQLite file (WAL, busy timeout, migrations embedded from
//! `migrations/`).
//!
//! Every state change is one `BEGIN IMMEDIATE` transaction with a conditional update
//! (`WHERE state IN (...)`) and the audit event that records it, so two approvers or two
//! executors racing cannot both win, and a crash leaves either the old state or the new one.
//!
//! States: `pending -> approved -> executing -> executed | failed`; `pending -> denied |
//! cancelled | expired`; `approved -> cancelled | expired`.

pub mod audit;
mod store;
pub mod view;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use store::{ClaimOwner, Queue, default_db_path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Executing,
    Executed,
    Failed,
    Denied,
    Cancelled,
    Expired,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Pending,
        State::Approved,
        State::Executing,
        State::Executed,
        State::Failed,
        State::Denied,
        State::Cancelled,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Executing => "executing",
            State::Executed => "executed",
            State::Failed => "failed",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Executed | State::Failed | State::Denied | State::Cancelled | State::Expired
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far the executor got with a request, in the order it happens. Recorded as it goes, so
/// a restart resumes after the last phase instead of repeating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claimed, nothing done yet.
    Start,
    /// The backup (snapshot, export) was requested; its id is recorded.
    BackupStarted,
    /// The copy of the backup in the backup region was requested.
    BackupCopyStarted,
    /// The backup (and its copy) completed.
    BackupDone,
    /// The action itself was sent.
    DeleteSent,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Start,
        Phase::BackupStarted,
        Phase::BackupCopyStarted,
        Phase::BackupDone,
        Phase::DeleteSent,
    ];

    /// As stored (the start is the empty string).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "",
            Phase::BackupStarted => "backup_started",
            Phase::BackupCopyStarted => "backup_copy_started",
            Phase::BackupDone => "backup_done",
            Phase::DeleteSent => "delete_sent",
        }
    }

    /// An unknown stored value reads as the start: the executor then re-checks everything.
    pub fn parse(s: &str) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .unwrap_or(Phase::Start)
    }
}

/// One request, as stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Request {
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

impl Request {
    pub fn state(&self) -> Option<State> {
        State::parse(&self.state)
    }

    /// How far the executor got.
    pub fn phase(&self) -> Phase {
        Phase::parse(&self.phase)
    }

    /// The stored call, parsed.
    pub fn call(&self) -> Option<Call> {
        serde_json::from_str(&self.call_json).ok()
    }

    /// Does the stored call still hash to the stored hash?
    pub fn call_intact(&self) -> bool {
        call_hash(&self.call_json) == self.call_hash
            && self.call().is_some_and(|c| c.canonical() == self.call_json)
    }
}

/// The exact call a request is bound to. Approvers sign its hash.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct Call {
    pub tool: String,
    pub environment: String,
    pub account: String,
    pub region: String,
    pub resource_arn: String,
    pub arguments: Value,
}

impl Call {
    /// Canonical JSON: keys sorted at every level, no whitespace.
    pub fn canonical(&self) -> String {
        canonical_json(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// One approval: a signature by an approver key over (request id, call hash, policy hash,
/// approved_at, not_before).
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Approval {
    pub request_id: String,
    pub approver: String,
    pub public_key: String,
    pub approved_at: i64,
    pub not_before: i64,
    pub signature: String,
}

/// What a new request holds.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub call: Call,
    pub resource_id: String,
    pub policy_hash: String,
    pub rule: String,
    pub approvers_required: i64,
    pub cooldown_ms: i64,
    pub reason: String,
    pub client_name: String,
    pub client_version: String,
    pub session_id: String,
    pub resource_json: String,
    pub ttl_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no request `{0}`; `airlock requests list` shows the requests")]
    NotFound(String),
    #[error("request {id} is {state}, so it cannot be {action}")]
    WrongState {
        id: String,
        state: String,
        action: String,
    },
    #[error("cannot open the queue at {path}: {message}")]
    Open { path: String, message: String },
    #[error("queue database error: {0}")]
    Db(String),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Db(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for QueueError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        QueueError::Db(e.to_string())
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).unwrap_or_default()
}

/// The hash approvers sign: SHA-256 over a domain tag and the canonical call.
pub fn call_hash(call_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"airlock-call-v1\n");
    h.update(call_json.as_bytes());
    hex::encode(h.finalize())
}

/// A short id a person can type: `r-` and 12 hex digits.
pub fn new_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("r-{}", &u[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(args: Value) -> Call {
        Call {
            tool: "request_delete_volume".into(),
            environment: "staging".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            resource_arn: "arn:aws:ec2:us-east-1:123456789012:volume/vol-1".into(),
            arguments: args,
        }
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = call(json!({"b": 1, "a": {"y": 2, "x": [3, {"d": 4, "c": 5}]}}));
        let b = call(json!({"a": {"x": [3, {"c": 5, "d": 4}], "y": 2}, "b": 1}));
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(call_hash(&a.canonical()), call_hash(&b.canonical()));
        let c = call(json!({"b": 2, "a": {"y": 2, "x": [3, {"d": 4, "c": 5}]}}));
        assert_ne!(call_hash(&a.canonical()), call_hash(&c.canonical()));
    }

    #[test]
    fn states_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("approved; DROP TABLE"), None);
    }
}

#[cfg(test)]
mod store_tests {
    //! The store against a real SQLite file: transitions are conditional, and `verify` finds an
    //! edited, deleted or reordered audit event.

    use super::*;
    use serde_json::json;

    fn new_request(n: u32) -> NewRequest {
        NewRequest {
            call: Call {
                tool: "request_delete_volume".into(),
                environment: "staging".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
                resource_arn: format!("arn:aws:ec2:us-east-1:123456789012:volume/vol-{n:08x}"),
                arguments: json!({"volume_id": format!("vol-{n:08x}")}),
            },
            resource_id: format!("vol-{n:08x}"),
            policy_hash: "p".into(),
            rule: "rule #1".into(),
            approvers_required: 1,
            cooldown_ms: 0,
            reason: "r".into(),
            client_name: "c".into(),
            client_version: "1".into(),
            session_id: "s".into(),
            resource_json: "{}".into(),
            ttl_ms: 60_000,
        }
    }

    /// A queue with two requests and a few transitions: 5 events.
    async fn queue(dir: &tempfile::TempDir) -> Queue {
        let q = Queue::open(&dir.path().join("q.db")).await.unwrap();
        let a = q.create(&new_request(1), "agent", 1).await.unwrap();
        let b = q.create(&new_request(2), "agent", 2).await.unwrap();
        q.transition(
            &a.id,
            &[State::Pending],
            State::Denied,
            "cli:x",
            "denied",
            json!({}),
            3,
        )
        .await
        .unwrap();
        q.transition(
            &b.id,
            &[State::Pending],
            State::Cancelled,
            "cli:y",
            "cancelled",
            json!({}),
            4,
        )
        .await
        .unwrap();
        q.note(
            Some(&b.id),
            "cli:z",
            "approval_refused",
            json!({"reason": "no terminal"}),
            5,
        )
        .await
        .unwrap();
        assert!(q.verify_audit().await.unwrap().ok());
        q
    }

    async fn tamper(q: &Queue, sql: &'static str) -> Vec<String> {
        sqlx::raw_sql(sql).execute(q.pool()).await.unwrap();
        q.verify_audit().await.unwrap().problems
    }

    #[tokio::test]
    async fn the_policy_signature_mark_only_rises_and_reports_a_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(&dir.path().join("q.db")).await.unwrap();
        let p = "/etc/airlock/policy.toml";
        assert_eq!(q.newest_policy_signature(p).await.unwrap(), None);
        assert_eq!(
            q.note_policy_signature(p, 100, "alice", "h1", 1)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            q.note_policy_signature(p, 200, "bob", "h2", 2)
                .await
                .unwrap(),
            None
        );
        // The same signature again, and an older one.
        assert_eq!(
            q.note_policy_signature(p, 200, "bob", "h2", 3)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            q.note_policy_signature(p, 100, "alice", "h1", 4)
                .await
                .unwrap(),
            Some((200, "bob".to_string()))
        );
        // Refusing records nothing; another policy file has its own mark.
        assert_eq!(
            q.newest_policy_signature(p).await.unwrap(),
            Some((200, "bob".to_string()))
        );
        assert_eq!(
            q.note_policy_signature("/other/policy.toml", 50, "carol", "h3", 5)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn conditional_transitions() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(&dir.path().join("q.db")).await.unwrap();
        let r = q.create(&new_request(1), "agent", 1).await.unwrap();
        q.transition(
            &r.id,
            &[State::Pending],
            State::Cancelled,
            "a",
            "cancelled",
            json!({}),
            2,
        )
        .await
        .unwrap();
        let again = q
            .transition(
                &r.id,
                &[State::Pending],
                State::Denied,
                "a",
                "denied",
                json!({}),
                3,
            )
            .await;
        assert!(
            matches!(again, Err(QueueError::WrongState { .. })),
            "{again:?}"
        );
        assert!(matches!(
            q.get("r-000000000000").await,
            Err(QueueError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn an_edited_event_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir).await;
        let p = tamper(
            &q,
            "UPDATE audit SET actor = 'cli:someone-else' WHERE seq = 3",
        )
        .await;
        assert!(
            p.iter()
                .any(|m| m.contains("event 3") && m.contains("was edited")),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_deleted_event_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir).await;
        let p = tamper(&q, "DELETE FROM audit WHERE seq = 2").await;
        assert!(p.iter().any(|m| m.contains("event 2 is missing")), "{p:?}");
    }

    #[tokio::test]
    async fn reordered_events_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir).await;
        let p = tamper(&q, "UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -3;").await;
        assert!(
            p.iter()
                .any(|m| m.contains("does not follow the event before it")),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_rewritten_chain_still_does_not_explain_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir).await;
        // Dropping a request's last events and the row itself would be consistent; dropping
        // only the events is not.
        let p = tamper(&q, "DELETE FROM audit WHERE seq >= 4").await;
        assert!(
            p.iter()
                .any(|m| m
                    .contains("is `cancelled` but its last audited transition made it `pending`")),
            "{p:?}"
        );
    }
}
