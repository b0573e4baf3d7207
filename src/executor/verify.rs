//! What the executor checks before it touches anything, from the sources it trusts rather
//! than the queue row: the stored call, the policy in force, the approvals' signatures against
//! the trust file, and the resource as it is now.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Executor, short};
use crate::approval::{ApprovalClaim, PublicKey, verify};
use crate::backup::Refuse;
use crate::catalogue::args::Args;
use crate::catalogue::{Risk, ToolSpec};
use crate::engine::{CallContext, ErrorKind};
use crate::policy::{Decision, Environment, Rule};
use crate::queue::Request;

impl Executor {
    /// The stored call is intact, names a destructive tool of the catalogue, and the policy is
    /// the one it was requested (and approved) under.
    pub(super) fn verify_call(
        &self,
        req: &Request,
    ) -> Result<(Arc<ToolSpec>, Args, Environment, Rule), Refuse> {
        if !req.call_intact() {
            return Err(Refuse("the stored call does not match its hash: the request was altered after it was made".into()));
        }
        let call = req
            .call()
            .ok_or_else(|| Refuse("the stored call cannot be read".into()))?;
        if call.tool != req.tool
            || call.environment != req.environment
            || call.resource_arn != req.resource_arn
        {
            return Err(Refuse(
                "the request's columns do not match its signed call: the request was altered"
                    .into(),
            ));
        }
        // A request made under an earlier policy file still runs only because the policy now in
        // force is signed by a trusted approver (checked before any claim, in `run_once`), and
        // only if that policy still queues this exact call with no more approvals and no
        // longer cooldown than were signed (checked below and in `verify_approvals`).
        if req.policy_hash != self.policy.hash {
            self.say(format!(
                "{}: made under policy {}; the signed policy now in force is {}: checking the call against it",
                req.id,
                short(&req.policy_hash),
                short(&self.policy.hash)
            ));
        }
        let input: Map<String, Value> = call.arguments.as_object().cloned().unwrap_or_default();
        let (tool, plan) = self
            .engine
            .plan(&call.tool, &input)
            .map_err(|e| Refuse(format!("the call is no longer valid: {e}")))?;
        if tool.risk != Risk::Destructive {
            return Err(Refuse(format!("`{}` is not a destructive tool", tool.name)));
        }
        if plan.verdict.decision != Decision::Approve {
            return Err(Refuse(format!(
                "the current policy no longer queues this call ({}: {})",
                plan.verdict.matched, plan.verdict.reason
            )));
        }
        let env = self
            .policy
            .environments
            .get(&call.environment)
            .cloned()
            .ok_or_else(|| {
                Refuse(format!(
                    "environment `{}` is gone from the policy",
                    call.environment
                ))
            })?;
        if env.account != call.account || env.region != call.region {
            return Err(Refuse(
                "the environment's account or region changed since the request".into(),
            ));
        }
        if env.executor_role.is_none() {
            return Err(Refuse(format!(
                "environment `{}` has no executor_role",
                env.name
            )));
        }
        if plan
            .session_policy
            .as_ref()
            .and_then(|p| p.resources.first())
            != Some(&call.resource_arn)
        {
            return Err(Refuse(
                "the call's resource does not match the resource it was approved for".into(),
            ));
        }
        let rule = plan
            .verdict
            .rule
            .ok_or_else(|| Refuse("an approval decision without a rule".into()))?;
        Ok((tool, plan.arguments, (*env).clone(), rule))
    }

    /// Enough distinct trusted approvers signed this exact request, call and policy, each with
    /// at least the rule's cooldown. Returns when it is due (the latest signed not-before).
    pub(super) async fn verify_approvals(&self, req: &Request, rule: &Rule) -> Result<i64, Refuse> {
        let cooldown = rule.cooldown.as_millis() as i64;
        let approvals = self
            .queue
            .approvals(&req.id)
            .await
            .map_err(|e| Refuse(e.to_string()))?;
        let mut valid = BTreeSet::new();
        let mut due = 0;
        let mut problems = Vec::new();
        for a in &approvals {
            let key: PublicKey = match a.public_key.parse() {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("an approval has an unreadable key: {e}"));
                    continue;
                }
            };
            let Some(trusted) = self.trust.find(&key) else {
                problems.push(format!(
                    "approval by {} ({}) is signed by a key that is not in the trust file {}",
                    a.approver,
                    key.fingerprint(),
                    self.trust.path.display()
                ));
                continue;
            };
            let claim = ApprovalClaim {
                request_id: req.id.clone(),
                call_hash: req.call_hash.clone(),
                policy_hash: req.policy_hash.clone(),
                approved_at_ms: a.approved_at,
                not_before_ms: a.not_before,
            };
            if let Err(e) = verify(&key, &claim, &a.signature) {
                problems.push(format!(
                    "approval by {} does not verify for this request, call and policy: {e}",
                    trusted.name
                ));
                continue;
            }
            if a.not_before - a.approved_at < cooldown {
                problems.push(format!(
                    "approval by {} allows a shorter cooldown than the rule's",
                    trusted.name
                ));
                continue;
            }
            valid.insert(key.to_string());
            due = due.max(a.not_before);
        }
        let required = rule.approvers as usize;
        if valid.len() < required {
            let mut why = format!(
                "{} valid approval(s) from trusted approvers; {required} required",
                valid.len()
            );
            if !problems.is_empty() {
                why.push_str(": ");
                why.push_str(&problems.join("; "));
            }
            return Err(Refuse(why));
        }
        if self.now() > due + self.policy.execution_window.as_millis() as i64 {
            return Err(Refuse(
                "the approval is older than the policy's execution_window".into(),
            ));
        }
        Ok(due)
    }

    /// The resource as it is now, under the executor's credential. `None` when it is gone.
    pub(super) async fn look(
        &self,
        req: &Request,
        tool: &ToolSpec,
        args: &Args,
    ) -> Result<Option<Value>, Refuse> {
        let ctx = CallContext {
            client_name: "airlock-executor".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            session_id: req.id.clone(),
        };
        let current = match self.engine.describe_resource(tool, args, &ctx).await {
            Ok(item) => item,
            Err(e) if matches!(e.kind, ErrorKind::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(Refuse(format!(
                    "could not look at the resource: {}",
                    e.message
                )));
            }
        };
        if current["protected"] == json!(true) {
            return Err(Refuse(format!(
                "{} is protected now; nothing was done",
                req.resource_id
            )));
        }
        if let Some((r, found)) = tool.describe.as_ref().and_then(|d| d.unmet(&current)) {
            let action = tool.aws().map_or("the action", |a| a.action.as_str());
            return Err(Refuse(format!(
                "AWS would refuse {action} on {} now: {}; no backup was taken and nothing was done",
                req.resource_id,
                r.why(found)
            )));
        }
        let approved: Value = serde_json::from_str(&req.resource_json).unwrap_or(Value::Null);
        for field in tool.describe.iter().flat_map(|d| d.unchanged.iter()) {
            if current.get(field) != approved.get(field) {
                return Err(Refuse(format!(
                    "{} changed since it was approved: `{field}` was {} and is now {}; nothing was done",
                    req.resource_id,
                    approved.get(field).unwrap_or(&Value::Null),
                    current.get(field).unwrap_or(&Value::Null)
                )));
            }
        }
        Ok(Some(current))
    }
}
