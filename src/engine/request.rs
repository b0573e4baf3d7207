//! Destructive calls become requests: airlock looks at the resource (through the tool's
//! `[describe]` read tool), refuses protected ones, and queues the exact call for a human. The
//! request tools (`get_request`, `cancel_request`) read and withdraw them.

use serde_json::{Value, json};

use super::answer::{ErrorKind, Queued, ToolError, ToolOutput, ToolResult};
use super::{CallContext, Engine, Plan};
use crate::aws;
use crate::catalogue::args::Args;
use crate::catalogue::{Handler, ToolSpec};
use crate::policy::signature::Status;
use crate::queue::{self, Call, NewRequest, QueueError, State};
use crate::timefmt::now_ms;

impl Engine {
    /// Look at a destructive call's resource through its `[describe]` read tool (under that
    /// tool's own read scope and policy). Exactly one item, or an error for the agent. An AWS
    /// error code the tool file lists as "not found" is reported as [`ErrorKind::NotFound`].
    pub async fn describe_resource(
        &self,
        tool: &ToolSpec,
        args: &Args,
        ctx: &CallContext,
    ) -> Result<Value, ToolError> {
        let Some(d) = &tool.describe else {
            return Err(ToolError::internal(format!(
                "`{}` declares no [describe]",
                tool.name
            )));
        };
        let Some(env) = args
            .get("environment")
            .and_then(Value::as_str)
            .and_then(|e| self.policy.environments.get(e))
        else {
            return Err(ToolError::internal(
                "a destructive call without a valid environment",
            ));
        };
        let mut input = aws::protocol::render_request(&d.arguments, args, env);
        input.insert("environment".into(), json!(env.name));
        let items = match Box::pin(self.call(&d.tool, &input, ctx)).await {
            Ok(ToolOutput::Listing(l)) => l.items,
            Ok(_) => {
                return Err(ToolError::internal(format!(
                    "[describe] tool `{}` answered with something other than items",
                    d.tool
                )));
            }
            Err(e)
                if e.aws_code()
                    .is_some_and(|c| d.not_found.iter().any(|n| n == c)) =>
            {
                Vec::new()
            }
            Err(e) => {
                return Err(ToolError::new(
                    ErrorKind::DescribeFailed(Box::new(e.clone())),
                    format!(
                        "airlock must look at the resource before queueing this request, and `{}` failed: {}",
                        d.tool, e.message
                    ),
                ));
            }
        };
        let n = items.len();
        match <[Value; 1]>::try_from(items) {
            Ok([item]) => Ok(item),
            Err(_) if n == 0 => Err(ToolError::new(
                ErrorKind::NotFound { field: None },
                format!(
                    "no such resource in `{}`: `{}` found nothing for {}",
                    env.name,
                    d.tool,
                    Value::Object(input)
                ),
            )
            .advise("check the id with the matching list tool; nothing was queued")),
            Err(_) => Err(ToolError::new(
                ErrorKind::Ambiguous,
                format!(
                    "`{}` found {n} resources; a request names exactly one",
                    d.tool
                ),
            )),
        }
    }

    /// Queue a destructive call for human approval.
    pub(super) async fn request(
        &self,
        tool: &ToolSpec,
        plan: Plan,
        ctx: &CallContext,
    ) -> ToolResult {
        let queue = self.queue().await?;
        let (Some(env), Some(sp), Some(rule)) =
            (&plan.env, &plan.session_policy, &plan.verdict.rule)
        else {
            return Err(ToolError::internal(
                "a queued call without an environment, a session policy or a rule",
            ));
        };
        let (Some(resource_id), Some(resource_arn)) =
            (plan.resources.first(), sp.resources.first())
        else {
            return Err(ToolError::internal(
                "a destructive call that names no resource",
            ));
        };
        let resource = self.describe_resource(tool, &plan.arguments, ctx).await?;
        if resource["protected"] == json!(true) {
            let tags: Vec<String> = self
                .policy
                .protected_tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            return Err(ToolError::new(
                ErrorKind::Refused {
                    rule: Some("protected resources".into()),
                },
                format!(
                    "`{resource_id}` is a protected resource (it carries a protected tag: {}); airlock will not queue changes to it. If it really must change, a human has to do it outside airlock.",
                    tags.join(", ")
                ),
            )
            .advise("Do not look for credentials or other ways around this. Tell the person you work with what you wanted to do and why."));
        }
        if let Some((r, found)) = tool.describe.as_ref().and_then(|d| d.unmet(&resource)) {
            let action = tool.aws().map_or("the action", |a| a.action.as_str());
            return Err(ToolError::new(
                ErrorKind::Precondition {
                    field: r.field.clone(),
                    found: Box::new(found.clone()),
                },
                format!(
                    "AWS would refuse {action} on `{resource_id}` now: {}",
                    r.why(found)
                ),
            )
            .advise(r.what_to_do.clone()));
        }
        let new = NewRequest {
            call: Call {
                tool: tool.name.clone(),
                environment: env.name.clone(),
                account: env.account.clone(),
                region: env.region.clone(),
                resource_arn: resource_arn.clone(),
                arguments: serde_json::to_value(&plan.arguments).unwrap_or(Value::Null),
            },
            resource_id: resource_id.clone(),
            policy_hash: self.policy.hash.clone(),
            rule: rule.label(),
            approvers_required: rule.approvers as i64,
            cooldown_ms: rule.cooldown.as_millis() as i64,
            reason: plan
                .arguments
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            client_name: ctx.client_name.clone(),
            client_version: ctx.client_version.clone(),
            session_id: ctx.session_id.clone(),
            resource_json: resource.to_string(),
            ttl_ms: self.policy.request_ttl.as_millis() as i64,
        };
        let r = queue
            .create(&new, &ctx.actor(), now_ms())
            .await
            .map_err(|e| ToolError::new(ErrorKind::Queue, e.to_string()))?;
        let cooldown = humantime::format_duration(rule.cooldown).to_string();
        let backup = crate::backup::plan(tool, env, &r.id);
        let then = backup.as_ref().map_or_else(
            || "Then the executor performs the deletion under a credential scoped to this one resource.".to_string(),
            |b| b.for_agent(),
        );
        Ok(ToolOutput::Queued(Box::new(Queued {
            what_happens_next: vec![
                format!(
                    "Nothing has been deleted. A human reviews this request and approves it with `airlock approve {}` ({} approver(s)), or denies it.",
                    r.id, r.approvers_required
                ),
                format!(
                    "After approval there is a {cooldown} cooldown; until it starts, you can withdraw it with cancel_request (from this session) and a person with `airlock cancel {}`.",
                    r.id
                ),
                then,
                format!(
                    "Follow it with get_request {{\"request_id\": \"{}\"}}. It expires if nobody approves it in time.",
                    r.id
                ),
            ],
            request_id: r.id,
            state: State::Pending,
            resource_id: resource_id.clone(),
            environment: env.name.clone(),
            approvals_required: r.approvers_required,
            cooldown,
            expires_at: crate::timefmt::format_ms(r.expires_at),
            backup,
        })))
    }

    /// get_request / cancel_request.
    pub(super) async fn request_tool(
        &self,
        tool: &ToolSpec,
        args: &Args,
        ctx: &CallContext,
    ) -> ToolResult {
        let queue_error = |e: QueueError| ToolError::new(ErrorKind::Queue, e.to_string());
        let queue = self.queue().await?;
        let id = args
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let now = now_ms();
        queue.expire_due(now).await.map_err(queue_error)?;
        let result = match tool.handler {
            Handler::RequestCancel => {
                let r = queue.get(id).await;
                if let Ok(r) = &r
                    && !may_withdraw(r, ctx)
                {
                    return Err(not_yours(r));
                }
                let why = args
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("cancelled by the agent");
                queue
                    .transition(
                        id,
                        &[State::Pending, State::Approved],
                        State::Cancelled,
                        &ctx.actor(),
                        "cancelled",
                        json!({"reason": why}),
                        now,
                    )
                    .await
            }
            _ => queue.get(id).await,
        };
        match result {
            Ok(r) => {
                let approvals = queue.approvals(&r.id).await.unwrap_or_default();
                Ok(ToolOutput::Request(Box::new(queue::view::view(
                    &r, &approvals, now,
                ))))
            }
            Err(e @ QueueError::NotFound(_)) => Err(ToolError::new(
                ErrorKind::NotFound {
                    field: Some("request_id".into()),
                },
                e.to_string(),
            )),
            Err(e @ QueueError::WrongState { .. }) => Err(ToolError::new(
                ErrorKind::WrongState,
                e.to_string(),
            )
            .advise("call get_request to see where it is; an executing or finished request cannot be cancelled")),
            Err(e) => Err(queue_error(e)),
        }
    }
}

/// Whether the caller of `cancel_request` may withdraw `r`: only the session that made it.
/// Another session, even of the same client, asks a person, who can `airlock cancel` it.
fn may_withdraw(r: &crate::queue::Request, ctx: &CallContext) -> bool {
    !r.session_id.is_empty() && r.session_id == ctx.session_id
}

fn not_yours(r: &crate::queue::Request) -> ToolError {
    ToolError::new(
        ErrorKind::Refused {
            rule: Some("only the requesting session may withdraw a request".into()),
        },
        format!(
            "request {} was made by another session ({} {}, session {}); cancel_request withdraws only this session's own requests, and nothing was changed",
            r.id, r.client_name, r.client_version, r.session_id
        ),
    )
    .advise(format!(
        "If it should not run, tell the person you work with: they can cancel it with `airlock cancel {}`. get_request shows where it is.",
        r.id
    ))
}

/// A destructive request refused because the policy is not signed: a tool error (not a
/// protocol error) that says why and that nothing was queued.
pub(super) fn unsigned(st: &Status, tool: &str) -> ToolError {
    ToolError::new(
        ErrorKind::PolicyNotSigned {
            manifest_hash: st.manifest_hash.clone(),
            changes: st.changes.clone(),
        },
        format!(
            "Nothing was queued: `{tool}` needs a policy signed by a trusted approver, and the policy airlock is serving is not ({}). A human must review policy.toml and the tool files it enables and run `airlock policy sign`; then make this request again. Read tools keep working.",
            st.problem.as_deref().unwrap_or("no valid signature")
        ),
    )
    .advise("Tell the person you work with that the airlock policy needs their review and signature (`airlock policy status` shows what changed). You cannot sign it, and editing policy.toml or its signature file only keeps it unsigned.")
}
