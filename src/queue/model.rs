//! The queue's domain model: requests bound to an exact call, their states and executor
//! phases, approvals, and the queue's errors. Backends store these; they never see rows.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

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

    /// The state machine: `pending -> approved -> executing -> executed | failed`;
    /// `pending -> denied | cancelled | expired`; `approved -> cancelled | expired`. An
    /// executor gives back a claim it cannot run yet (`executing -> approved`), and another
    /// executor resumes one whose holder is gone (`executing -> executing`).
    pub fn may_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Pending, Approved | Denied | Cancelled | Expired)
                | (Approved, Executing | Cancelled | Expired)
                | (Executing, Executed | Failed | Approved | Executing)
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
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: String,
    pub state: State,
    /// The exact call as canonical JSON, and its SHA-256: what approvers sign.
    pub call_json: String,
    pub call_hash: String,
    pub tool: String,
    pub environment: String,
    pub account: String,
    pub region: String,
    /// When it may run (the latest signed not-before), once approved.
    pub not_before: Option<i64>,
    pub resource_id: String,
    pub resource_arn: String,
    /// The resource as airlock saw it when the request was made (JSON).
    pub resource_json: String,
    /// What the executor recorded: the outcome of a finished request, or why it holds one.
    pub outcome: Option<Value>,
    /// The policy it was requested under, the rule that queued it, and what the rule asks.
    pub policy_hash: String,
    pub rule: String,
    pub approvers_required: i64,
    pub cooldown_ms: i64,
    /// The executor that holds it while it runs, and until when.
    pub lease_owner: Option<String>,
    /// Why the agent asked, and who asked (the MCP client and its session).
    pub reason: String,
    pub client_name: String,
    pub client_version: String,
    pub session_id: String,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub attempts: i64,
    /// How far the executor got, and the backup (and its copy) it took.
    pub backup_id: Option<String>,
    pub phase: Phase,
    pub backup_copy_id: Option<String>,
}

impl Request {
    /// How far the executor got.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Why the executor holds this approved request, if it does.
    pub fn held(&self) -> Option<&str> {
        self.outcome.as_ref()?.get("held")?.as_str()
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// A change that the request state machine does not allow (a bug in the caller).
    #[error("a request cannot move from {from} to {to}")]
    Transition { from: State, to: State },
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

    #[test]
    fn final_states_lead_nowhere_and_only_the_executor_leaves_executing() {
        for from in State::ALL {
            for to in State::ALL {
                if from.is_final() {
                    assert!(!from.may_become(to), "{from} -> {to}");
                }
            }
        }
        assert!(State::Pending.may_become(State::Approved));
        assert!(!State::Pending.may_become(State::Executing));
        assert!(!State::Approved.may_become(State::Denied));
        assert!(!State::Executing.may_become(State::Cancelled));
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), p);
        }
    }
}
