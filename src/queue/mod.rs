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
