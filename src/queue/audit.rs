//! The audit log: every transition and every refused attempt appends an event whose hash
//! covers its content and the previous event's hash. [`verify`] finds an edited, deleted or
//! reordered event, and cross-checks the chain against the tables it describes: a request whose
//! state no event explains, or an approval no event recorded (rows written straight into the
//! database), is reported too. Pure: backends read and write rows; the chain is made here.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::canonical_json;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub at: i64,
    pub request_id: Option<String>,
    pub actor: String,
    pub event: String,
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub at: i64,
    pub request_id: Option<String>,
    pub actor: String,
    pub event: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of one event: over an unambiguous JSON array of its fields.
pub fn event_hash(
    seq: i64,
    at: i64,
    request_id: Option<&str>,
    actor: &str,
    event: &str,
    detail: &str,
    prev: &str,
) -> String {
    let body = json!([seq, at, request_id, actor, event, detail, prev]).to_string();
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The event `draft` becomes after the chain head `head` (seq, hash), or first in the chain.
pub fn seal(head: Option<(i64, &str)>, draft: &Draft) -> Event {
    let (seq, prev) = match head {
        Some((s, h)) => (s + 1, h.to_string()),
        None => (1, GENESIS.to_string()),
    };
    let detail = canonical_json(&draft.detail);
    let hash = event_hash(
        seq,
        draft.at,
        draft.request_id.as_deref(),
        &draft.actor,
        &draft.event,
        &detail,
        &prev,
    );
    Event {
        seq,
        at: draft.at,
        request_id: draft.request_id.clone(),
        actor: draft.actor.clone(),
        event: draft.event.clone(),
        detail,
        prev_hash: prev,
        hash,
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub events: usize,
    pub head: String,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Check the chain, then that it explains every request's state (`requests`: id and state, in
/// creation order) and every approval (`signatures`: request id and signature).
pub fn verify(
    events: &[Event],
    requests: &[(String, String)],
    signatures: &[(String, String)],
) -> Report {
    let mut problems = Vec::new();
    let head = check_chain(events, &mut problems);
    let (last_state, recorded_sigs) = replay(events, &mut problems);
    for (id, state) in requests {
        match last_state.get(id) {
            None => problems.push(format!("request {id} has no audit event: it was written into the queue directly")),
            Some(s) if s != state => problems.push(format!(
                "request {id} is `{state}` but its last audited transition made it `{s}`: its state was changed outside airlock"
            )),
            Some(_) => {}
        }
    }
    for (rid, sig) in signatures {
        if !recorded_sigs.contains(sig) {
            problems.push(format!(
                "an approval of {rid} has no audit event: it was written into the queue directly"
            ));
        }
    }
    Report {
        events: events.len(),
        head,
        problems,
    }
}

/// Each event follows the one before it and hashes to its hash; returns the chain head.
fn check_chain(events: &[Event], problems: &mut Vec<String>) -> String {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    for e in events {
        if e.seq != expected_seq {
            problems.push(format!(
                "event {expected_seq} is missing (the next event is {}): events were deleted",
                e.seq
            ));
            expected_seq = e.seq;
        }
        if e.prev_hash != prev {
            problems.push(format!("event {} does not follow the event before it: events were deleted, inserted or reordered", e.seq));
        }
        let h = event_hash(
            e.seq,
            e.at,
            e.request_id.as_deref(),
            &e.actor,
            &e.event,
            &e.detail,
            &e.prev_hash,
        );
        if h != e.hash {
            problems.push(format!(
                "event {} ({} on {}) was edited: its hash does not match its content",
                e.seq,
                e.event,
                e.request_id.as_deref().unwrap_or("-")
            ));
        }
        prev = e.hash.clone();
        expected_seq += 1;
    }
    prev
}

type Replayed = (
    std::collections::HashMap<String, String>,
    std::collections::HashSet<String>,
);

/// The state each request's last transition event names, and every signature an event
/// recorded. A transition must start where the audited history left the request.
fn replay(events: &[Event], problems: &mut Vec<String>) -> Replayed {
    let mut last_state = std::collections::HashMap::<String, String>::new();
    let mut recorded_sigs = std::collections::HashSet::<String>::new();
    for e in events {
        let d: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
        if let (Some(rid), Some(to)) = (&e.request_id, d.get("to").and_then(Value::as_str)) {
            if let (Some(from), Some(before)) =
                (d.get("from").and_then(Value::as_str), last_state.get(rid))
                && from != before
            {
                problems.push(format!(
                    "event {} moved request {rid} from `{from}`, but its audited state was `{before}`: its state was changed outside airlock",
                    e.seq
                ));
            }
            last_state.insert(rid.clone(), to.to_string());
        }
        if let Some(sig) = d.get("signature").and_then(Value::as_str) {
            recorded_sigs.insert(sig.to_string());
        }
    }
    (last_state, recorded_sigs)
}
