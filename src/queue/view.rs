//! How a request is shown to the agent (`get_request`) and to people (`airlock requests`).

use serde_json::{Value, json};

use super::{Approval, Request};
use crate::timefmt::format_ms;

/// `1h 02m 03s`-style countdown (or `now`).
pub fn countdown(ms: i64) -> String {
    if ms <= 0 {
        return "now".into();
    }
    let s = (ms + 999) / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// A request as JSON, with its approvals and what happens next.
pub fn view(r: &Request, approvals: &[Approval], now: i64) -> Value {
    let resource: Value = serde_json::from_str(&r.resource_json).unwrap_or(Value::Null);
    let outcome: Value = r
        .outcome
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or(Value::Null);
    let args: Value = r.call().map(|c| c.arguments).unwrap_or(Value::Null);
    let mut v = json!({
        "request_id": r.id,
        "state": r.state,
        "tool": r.tool,
        "environment": r.environment,
        "account": r.account,
        "region": r.region,
        "resource_id": r.resource_id,
        "resource_arn": r.resource_arn,
        "arguments": args,
        "reason": r.reason,
        "requested_by": {"client": r.client_name, "client_version": r.client_version, "session": r.session_id},
        "created_at": format_ms(r.created_at),
        "expires_at": format_ms(r.expires_at),
        "rule": r.rule,
        "approvals_required": r.approvers_required,
        "approvals": approvals.iter().map(|a| json!({"approver": a.approver, "public_key": a.public_key, "approved_at": format_ms(a.approved_at)})).collect::<Vec<_>>(),
        "cooldown": countdown(r.cooldown_ms),
        "resource": resource,
        "call_hash": r.call_hash,
        "policy_hash": r.policy_hash,
    });
    let m = v.as_object_mut().expect("object");
    if let Some(nb) = r.not_before {
        m.insert("not_before".into(), json!(format_ms(nb)));
        if r.state == "approved" {
            m.insert("due_in".into(), json!(countdown(nb - now)));
        }
    }
    if r.state == "pending" {
        m.insert("expires_in".into(), json!(countdown(r.expires_at - now)));
    }
    if r.backup_id.is_some() || r.backup_copy_id.is_some() {
        m.insert(
            "backup".into(),
            json!({"snapshot_id": r.backup_id, "copy_snapshot_id": r.backup_copy_id}),
        );
    }
    if !outcome.is_null() {
        m.insert("outcome".into(), outcome);
    }
    m.insert(
        "next".into(),
        json!(next_step(r, approvals.len() as i64, now)),
    );
    v
}

/// Why the executor holds an approved request, if it does.
pub fn held(r: &Request) -> Option<String> {
    let o: Value = serde_json::from_str(r.outcome.as_deref()?).ok()?;
    o.get("held")?.as_str().map(str::to_string)
}

/// What happens next, in one sentence.
pub fn next_step(r: &Request, approvals: i64, now: i64) -> String {
    match r.state.as_str() {
        "pending" => format!(
            "waiting for {} more approval(s): a human runs `airlock approve {}`; expires in {} if nobody does",
            (r.approvers_required - approvals).max(1),
            r.id,
            countdown(r.expires_at - now)
        ),
        "approved" if held(r).is_some() => format!(
            "approved, but the executor holds it: {} (cancellable with cancel_request or `airlock cancel {}`)",
            held(r).unwrap_or_default(),
            r.id
        ),
        "approved" => format!(
            "approved; the executor may run it in {} (cancellable until then with cancel_request or `airlock cancel {}`)",
            countdown(r.not_before.unwrap_or(now) - now),
            r.id
        ),
        "executing" => format!(
            "the executor is running it (phase: {})",
            if r.phase.is_empty() {
                "starting"
            } else {
                &r.phase
            }
        ),
        "executed" => "done".into(),
        "failed" => {
            "failed; see outcome. It will not be retried: make a new request if it is still needed"
                .into()
        }
        "denied" => {
            "denied by a human; do not retry the same request without new information".into()
        }
        "cancelled" => "cancelled; nothing was changed".into(),
        "expired" => {
            "expired without running; nothing was changed. Make a new request if it is still needed"
                .into()
        }
        _ => String::new(),
    }
}
