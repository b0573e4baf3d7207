//! How a request is shown to the agent (`get_request`) and to people (`airlock requests`).

use serde::Serialize;
use serde_json::Value;

use super::{Approval, Phase, Request, State};
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

/// A request with its approvals and what happens next.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub request_id: String,
    pub state: String,
    pub tool: String,
    pub environment: String,
    pub account: String,
    pub region: String,
    pub resource_id: String,
    pub resource_arn: String,
    pub arguments: Value,
    pub reason: String,
    pub requested_by: RequestedBy,
    pub created_at: String,
    pub expires_at: String,
    pub rule: String,
    pub approvals_required: i64,
    pub approvals: Vec<ApprovalView>,
    pub cooldown: String,
    /// The resource as airlock saw it when the request was made.
    pub resource: Value,
    pub call_hash: String,
    pub policy_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupIds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    pub next: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestedBy {
    pub client: String,
    pub client_version: String,
    pub session: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub approver: String,
    pub public_key: String,
    pub approved_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupIds {
    pub snapshot_id: Option<String>,
    pub copy_snapshot_id: Option<String>,
}

/// A request, with its approvals and what happens next.
pub fn view(r: &Request, approvals: &[Approval], now: i64) -> RequestView {
    let resource: Value = serde_json::from_str(&r.resource_json).unwrap_or(Value::Null);
    let outcome = r.outcome.clone().filter(|o| !o.is_null());
    RequestView {
        request_id: r.id.clone(),
        state: r.state.to_string(),
        tool: r.tool.clone(),
        environment: r.environment.clone(),
        account: r.account.clone(),
        region: r.region.clone(),
        resource_id: r.resource_id.clone(),
        resource_arn: r.resource_arn.clone(),
        arguments: r.call().map(|c| c.arguments).unwrap_or(Value::Null),
        reason: r.reason.clone(),
        requested_by: RequestedBy {
            client: r.client_name.clone(),
            client_version: r.client_version.clone(),
            session: r.session_id.clone(),
        },
        created_at: format_ms(r.created_at),
        expires_at: format_ms(r.expires_at),
        rule: r.rule.clone(),
        approvals_required: r.approvers_required,
        approvals: approvals
            .iter()
            .map(|a| ApprovalView {
                approver: a.approver.clone(),
                public_key: a.public_key.clone(),
                approved_at: format_ms(a.approved_at),
            })
            .collect(),
        cooldown: countdown(r.cooldown_ms),
        resource,
        call_hash: r.call_hash.clone(),
        policy_hash: r.policy_hash.clone(),
        not_before: r.not_before.map(format_ms),
        due_in: r
            .not_before
            .filter(|_| r.state == State::Approved)
            .map(|nb| countdown(nb - now)),
        expires_in: (r.state == State::Pending).then(|| countdown(r.expires_at - now)),
        backup: (r.backup_id.is_some() || r.backup_copy_id.is_some()).then(|| BackupIds {
            snapshot_id: r.backup_id.clone(),
            copy_snapshot_id: r.backup_copy_id.clone(),
        }),
        outcome,
        next: next_step(r, approvals.len() as i64, now),
    }
}

/// What happens next, in one sentence.
pub fn next_step(r: &Request, approvals: i64, now: i64) -> String {
    match r.state {
        State::Pending => format!(
            "waiting for {} more approval(s): a human runs `airlock approve {}`; expires in {} if nobody does",
            (r.approvers_required - approvals).max(1),
            r.id,
            countdown(r.expires_at - now)
        ),
        State::Approved => match r.held() {
            Some(why) => format!(
                "approved, but the executor holds it: {why} (cancellable with cancel_request or `airlock cancel {}`)",
                r.id
            ),
            None => format!(
                "approved; the executor may run it in {} (cancellable until then with cancel_request or `airlock cancel {}`)",
                countdown(r.not_before.unwrap_or(now) - now),
                r.id
            ),
        },
        State::Executing => format!(
            "the executor is running it (phase: {})",
            match r.phase {
                Phase::Start => "starting",
                p => p.as_str(),
            }
        ),
        State::Executed => "done".into(),
        State::Failed => {
            "failed; see outcome. It will not be retried: make a new request if it is still needed"
                .into()
        }
        State::Denied => {
            "denied by a human; do not retry the same request without new information".into()
        }
        State::Cancelled => "cancelled; nothing was changed".into(),
        State::Expired => {
            "expired without running; nothing was changed. Make a new request if it is still needed"
                .into()
        }
    }
}
