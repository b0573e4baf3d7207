//! The call path, in one place: validate -> decide -> render the session policy -> mint
//! credentials -> signed request -> project and redact -> result. [`Engine::plan`] is the
//! first half (no I/O, no credentials) and is what `airlock explain` prints; [`Engine::call`]
//! runs the whole path.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::aws::{self, AwsError, call::Fetched};
use crate::catalogue::args::{self, ArgError, Args};
use crate::catalogue::{Catalogue, Handler, Risk, ToolSpec};
use crate::credentials::{CredentialBroker, CredentialError, ScopeRequest};
use crate::policy::signature::{Integrity, Status};
use crate::policy::{CallFacts, Decision, Environment, Policy, Verdict};
use crate::queue::{self, Call, NewRequest, Queue, QueueError, State};
use crate::scope::{self, ScopeError, SessionPolicy};
use crate::timefmt::now_ms;

/// Who is calling: the MCP client and this server's session.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub client_name: String,
    pub client_version: String,
    pub session_id: String,
}

impl CallContext {
    /// The `SourceIdentity` for AssumeRole: names the agent session ([\w+=,.@-], 2-64).
    pub fn source_identity(&self) -> String {
        let client: String = self
            .client_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        let client = if client.is_empty() {
            "unknown".into()
        } else {
            client
        };
        let sid: String = self
            .session_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        format!("airlock-{client}-{sid}")
    }

    /// How the agent appears in the audit log.
    pub fn actor(&self) -> String {
        format!(
            "agent:{}/{}:{}",
            self.client_name, self.client_version, self.session_id
        )
    }
}

/// Everything decided about a call before any credential exists.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub tool: String,
    pub risk: Risk,
    pub environment: Option<String>,
    pub arguments: Args,
    pub resources: Vec<String>,
    pub verdict: Verdict,
    /// The exact session policy that would be sent (for AWS tools that are allowed or queued).
    pub session_policy: Option<SessionPolicy>,
}

/// Why a call did not run. Every variant is reported to the agent as a tool error whose text
/// says what to do instead; none of them mints a credential.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("unknown tool `{0}`; call tools/list or describe_access to see the tools you have")]
    UnknownTool(String),
    #[error("{0}")]
    BadArgument(#[from] ArgError),
    #[error("refused by policy ({matched}): {reason}", matched = .0.matched, reason = .0.reason)]
    Denied(Box<Verdict>),
    #[error("{0}")]
    Scope(#[from] ScopeError),
}

/// A failure after the policy allowed the call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Credentials(#[from] CredentialError),
    #[error("{0}")]
    Aws(#[from] AwsError),
}

pub struct Engine {
    pub policy: Arc<Policy>,
    pub catalogue: Arc<Catalogue>,
    pub broker: Arc<dyn CredentialBroker>,
    /// Built on first use: building it loads the TLS root certificates (hundreds of files),
    /// which would otherwise sit between spawn and the `initialize` answer.
    http: std::sync::OnceLock<reqwest::Client>,
    /// The queue file, opened on first use (so start-up stays fast for read-only sessions).
    db_path: Option<PathBuf>,
    queue: tokio::sync::OnceCell<Arc<Queue>>,
    /// The signed-policy check run before every destructive request (`airlock serve` sets it).
    integrity: Option<Arc<Integrity>>,
}

/// A tool's answer: a JSON body, and whether it is an error for the agent.
#[derive(Debug, Clone)]
pub struct ToolAnswer {
    pub is_error: bool,
    pub body: Value,
}

impl ToolAnswer {
    fn ok(body: Value) -> Self {
        Self {
            is_error: false,
            body,
        }
    }
    fn error(kind: &str, message: String, extra: Value) -> Self {
        let mut body = json!({"error": kind, "message": message});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        Self {
            is_error: true,
            body,
        }
    }
}

impl Engine {
    pub fn new(
        policy: Arc<Policy>,
        catalogue: Arc<Catalogue>,
        broker: Arc<dyn CredentialBroker>,
    ) -> Self {
        Self {
            policy,
            catalogue,
            broker,
            http: std::sync::OnceLock::new(),
            db_path: None,
            queue: tokio::sync::OnceCell::new(),
            integrity: None,
        }
    }

    /// Refuse new destructive requests unless the loaded policy is signed by a trusted
    /// approver (checked on every request; see [`Integrity`]).
    pub fn with_integrity(mut self, integrity: Arc<Integrity>) -> Self {
        self.integrity = Some(integrity);
        self
    }

    /// Where destructive requests are queued.
    pub fn with_queue_path(mut self, path: PathBuf) -> Self {
        self.db_path = Some(path);
        self
    }

    /// The queue, opened on first use.
    pub async fn queue(&self) -> Result<Arc<Queue>, String> {
        let Some(path) = &self.db_path else {
            return Err("this airlock has no approval queue configured".into());
        };
        self.queue
            .get_or_try_init(|| async { Queue::open(path).await.map(Arc::new) })
            .await
            .cloned()
            .map_err(|e| e.to_string())
    }

    /// Validate, decide and render, without I/O.
    pub fn plan(
        &self,
        tool_name: &str,
        input: &Map<String, Value>,
    ) -> Result<(Arc<ToolSpec>, Plan), Refusal> {
        let tool = self
            .catalogue
            .get(tool_name)
            .cloned()
            .ok_or_else(|| Refusal::UnknownTool(tool_name.to_string()))?;
        let args = args::validate(&tool, input, &self.policy.environment_names())?;
        let environment = args
            .get("environment")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut resources = Vec::new();
        for a in tool.resource_arguments() {
            match args.get(&a.name) {
                Some(Value::String(s)) => resources.push(s.clone()),
                Some(Value::Array(xs)) => {
                    resources.extend(xs.iter().filter_map(Value::as_str).map(str::to_string))
                }
                _ => {}
            }
        }
        let verdict = match &tool.handler {
            Handler::DescribeAccess | Handler::RequestStatus | Handler::RequestCancel => Verdict {
                decision: Decision::Allow,
                matched: "built-in".into(),
                reason: format!("{} is always available", tool.name),
                rule: None,
            },
            Handler::Aws(_) => self.policy.decide(&CallFacts {
                tool: &tool.name,
                risk: tool.risk,
                environment: environment.as_deref().unwrap_or_default(),
                resources: &resources,
            }),
        };
        let session_policy = match (&tool.handler, verdict.decision, &environment) {
            (Handler::Aws(_), Decision::Allow | Decision::Approve, Some(env)) => {
                let env = &self.policy.environments[env];
                Some(scope::render(&tool, env, &args)?)
            }
            _ => None,
        };
        let plan = Plan {
            tool: tool.name.clone(),
            risk: tool.risk,
            environment,
            arguments: args,
            resources,
            verdict,
            session_policy,
        };
        Ok((tool, plan))
    }

    /// Run a tool call end to end.
    pub async fn call(
        &self,
        tool_name: &str,
        input: &Map<String, Value>,
        ctx: &CallContext,
    ) -> ToolAnswer {
        let (tool, plan) = match self.plan(tool_name, input) {
            Ok(x) => x,
            Err(r) => return refusal_answer(r, tool_name),
        };
        match (plan.verdict.decision, tool.risk) {
            (Decision::Deny, _) => {
                return refusal_answer(Refusal::Denied(Box::new(plan.verdict)), tool_name);
            }
            (Decision::Approve, Risk::Destructive) => {
                if let Some(i) = &self.integrity {
                    let st = match self.queue().await {
                        Ok(q) => i.check_fresh(&q).await,
                        Err(e) => return ToolAnswer::error("queue_unavailable", e, json!({})),
                    };
                    if !st.signed {
                        return unsigned_answer(&st, tool_name);
                    }
                }
                return self.request(&tool, plan, ctx).await;
            }
            (Decision::Approve, _) => {
                return ToolAnswer::error(
                    "needs_approval",
                    format!(
                        "`{}` in `{}` needs a human's approval ({}: {}). Only destructive tools can be queued; ask the person you work with, or call describe_access for what you may do directly.",
                        plan.tool,
                        plan.environment.as_deref().unwrap_or("?"),
                        plan.verdict.matched,
                        plan.verdict.reason
                    ),
                    json!({"decision": "approve", "rule": plan.verdict.matched}),
                );
            }
            (Decision::Allow, Risk::Destructive) => {
                // Policy validation forbids this; refuse rather than run a destructive call.
                return ToolAnswer::error(
                    "refused",
                    "destructive tools only ever run through the approval queue".into(),
                    json!({}),
                );
            }
            (Decision::Allow, _) => {}
        }
        match &tool.handler {
            Handler::DescribeAccess => {
                let mut body = crate::mcp::access::describe(
                    &self.policy,
                    &self.catalogue,
                    plan.environment.as_deref(),
                );
                if let Some(i) = &self.integrity {
                    let st = match self.queue().await {
                        Ok(q) => i.check_fresh(&q).await,
                        Err(_) => i.check(),
                    };
                    body["policy_signature"] = if st.signed {
                        json!({"signed": true, "signed_by": st.signed_by.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), "manifest_hash": st.manifest_hash})
                    } else {
                        json!({"signed": false, "problem": st.problem, "meaning": "read tools work; needs_approval tools refuse new requests until a human reviews the policy and runs `airlock policy sign`"})
                    };
                }
                ToolAnswer::ok(body)
            }
            Handler::RequestStatus | Handler::RequestCancel => {
                self.request_handler(&tool, &plan.arguments, ctx).await
            }
            Handler::Aws(spec) => {
                let env_name = plan.environment.clone().unwrap_or_default();
                let env = &self.policy.environments[&env_name];
                let Some(sp) = plan.session_policy.as_ref() else {
                    return ToolAnswer::error(
                        "internal",
                        "no session policy was rendered".into(),
                        json!({}),
                    );
                };
                match self
                    .run_aws(&tool, spec, env, &plan.arguments, sp, ctx)
                    .await
                {
                    Ok(fetched) => ToolAnswer::ok(self.result_body(&tool, &plan, sp, fetched)),
                    Err(e) => failure_answer(e, &tool, env),
                }
            }
        }
    }

    /// Look at a destructive call's resource through its `[describe]` read tool (under that
    /// tool's own read scope and policy). Exactly one item, or an error for the agent.
    pub async fn describe_resource(
        &self,
        tool: &ToolSpec,
        args: &Args,
        ctx: &CallContext,
    ) -> Result<Value, ToolAnswer> {
        let Some(d) = &tool.describe else {
            return Err(ToolAnswer::error(
                "internal",
                format!("`{}` declares no [describe]", tool.name),
                json!({}),
            ));
        };
        let env_name = args
            .get("environment")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let env = &self.policy.environments[env_name];
        let mut input = aws::protocol::render_request(&d.arguments, args, env);
        input.insert("environment".into(), json!(env_name));
        let answer = Box::pin(self.call(&d.tool, &input, ctx)).await;
        let gone = answer.body["aws_code"]
            .as_str()
            .is_some_and(|c| d.not_found.iter().any(|n| n == c));
        if answer.is_error && !gone {
            return Err(ToolAnswer::error(
                "describe_failed",
                format!(
                    "airlock must look at the resource before queueing this request, and `{}` failed: {}",
                    d.tool,
                    answer.body["message"].as_str().unwrap_or("unknown error")
                ),
                json!({"describe": answer.body}),
            ));
        }
        let items = answer.body["items"].as_array().cloned().unwrap_or_default();
        match items.len() {
            1 => Ok(items.into_iter().next().unwrap_or(Value::Null)),
            0 => Err(ToolAnswer::error(
                "not_found",
                format!(
                    "no such resource in `{env_name}`: `{}` found nothing for {}",
                    d.tool,
                    Value::Object(input)
                ),
                json!({"what_you_can_do": "check the id with the matching list tool; nothing was queued"}),
            )),
            n => Err(ToolAnswer::error(
                "ambiguous",
                format!(
                    "`{}` found {n} resources; a request names exactly one",
                    d.tool
                ),
                json!({}),
            )),
        }
    }

    /// Queue a destructive call for human approval.
    async fn request(&self, tool: &ToolSpec, plan: Plan, ctx: &CallContext) -> ToolAnswer {
        let queue = match self.queue().await {
            Ok(q) => q,
            Err(e) => return ToolAnswer::error("queue_unavailable", e, json!({})),
        };
        let Some(sp) = plan.session_policy.as_ref() else {
            return ToolAnswer::error(
                "internal",
                "no session policy was rendered".into(),
                json!({}),
            );
        };
        let resource = match self.describe_resource(tool, &plan.arguments, ctx).await {
            Ok(r) => r,
            Err(a) => return a,
        };
        let resource_id = plan.resources.first().cloned().unwrap_or_default();
        if resource["protected"] == json!(true) {
            let tags: Vec<String> = self
                .policy
                .protected_tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            return ToolAnswer::error(
                "refused",
                format!(
                    "`{resource_id}` is a protected resource (it carries a protected tag: {}); airlock will not queue changes to it. If it really must change, a human has to do it outside airlock.",
                    tags.join(", ")
                ),
                json!({"rule": "protected resources", "what_you_can_do": "Do not look for credentials or other ways around this. Tell the person you work with what you wanted to do and why."}),
            );
        }
        let Some(rule) = plan.verdict.rule.clone() else {
            return ToolAnswer::error(
                "internal",
                "an approval decision without a rule".into(),
                json!({}),
            );
        };
        let env = &self.policy.environments[plan.environment.as_deref().unwrap_or_default()];
        let new = NewRequest {
            call: Call {
                tool: tool.name.clone(),
                environment: env.name.clone(),
                account: env.account.clone(),
                region: env.region.clone(),
                resource_arn: sp.resources.first().cloned().unwrap_or_default(),
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
        let now = now_ms();
        match queue.create(&new, &ctx.actor(), now).await {
            Ok(r) => {
                let cooldown = humantime::format_duration(rule.cooldown).to_string();
                let backup = crate::executor::backup_plan(tool, env, &r.id);
                let then = backup.as_ref().map_or_else(
                    || "Then the executor performs the deletion under a credential scoped to this one resource.".to_string(),
                    |b| b.for_agent(),
                );
                ToolAnswer::ok(json!({
                    "request_id": r.id,
                    "state": r.state,
                    "resource_id": resource_id,
                    "environment": env.name,
                    "approvals_required": r.approvers_required,
                    "cooldown": cooldown,
                    "expires_at": crate::timefmt::format_ms(r.expires_at),
                    "backup": backup,
                    "what_happens_next": [
                        format!("Nothing has been deleted. A human reviews this request and approves it with `airlock approve {}` ({} approver(s)), or denies it.", r.id, r.approvers_required),
                        format!("After approval there is a {cooldown} cooldown; anyone can cancel until it starts (cancel_request)."),
                        then,
                        format!("Follow it with get_request {{\"request_id\": \"{}\"}}. It expires if nobody approves it in time.", r.id),
                    ],
                }))
            }
            Err(e) => ToolAnswer::error("queue_error", e.to_string(), json!({})),
        }
    }

    /// get_request / cancel_request.
    async fn request_handler(&self, tool: &ToolSpec, args: &Args, ctx: &CallContext) -> ToolAnswer {
        let queue = match self.queue().await {
            Ok(q) => q,
            Err(e) => return ToolAnswer::error("queue_unavailable", e, json!({})),
        };
        let id = args
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let now = now_ms();
        if let Err(e) = queue.expire_due(now).await {
            return ToolAnswer::error("queue_error", e.to_string(), json!({}));
        }
        let result = match tool.handler {
            Handler::RequestCancel => {
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
                ToolAnswer::ok(queue::view::view(&r, &approvals, now))
            }
            Err(e @ QueueError::NotFound(_)) => {
                ToolAnswer::error("not_found", e.to_string(), json!({"field": "request_id"}))
            }
            Err(e @ QueueError::WrongState { .. }) => ToolAnswer::error(
                "wrong_state",
                e.to_string(),
                json!({"what_you_can_do": "call get_request to see where it is; an executing or finished request cannot be cancelled"}),
            ),
            Err(e) => ToolAnswer::error("queue_error", e.to_string(), json!({})),
        }
    }

    async fn run_aws(
        &self,
        tool: &ToolSpec,
        spec: &crate::catalogue::AwsSpec,
        env: &Environment,
        args: &Args,
        sp: &SessionPolicy,
        ctx: &CallContext,
    ) -> Result<Fetched, CallError> {
        let source_identity = ctx.source_identity();
        let creds = self
            .broker
            .credentials(ScopeRequest {
                env,
                policy: sp,
                tool: &tool.name,
                source_identity: &source_identity,
            })
            .await?;
        let fetched = aws::call::fetch(
            self.http.get_or_init(aws::call::http_client),
            spec,
            tool.output.items.as_deref(),
            env,
            args,
            &creds,
        )
        .await?;
        Ok(fetched)
    }

    fn result_body(
        &self,
        tool: &ToolSpec,
        plan: &Plan,
        sp: &SessionPolicy,
        fetched: Fetched,
    ) -> Value {
        let limit = tool
            .output
            .limit_argument
            .as_ref()
            .and_then(|l| plan.arguments.get(l))
            .and_then(Value::as_u64)
            .map(|l| l as usize);
        let raw_items = match (tool.output.items.is_some(), fetched.document) {
            (true, _) => fetched.items,
            (false, Some(doc)) => vec![doc],
            (false, None) => Vec::new(),
        };
        let only = tool.output.only.as_ref().and_then(|m| {
            plan.arguments
                .get(&m.argument)
                .map(|v| (m.field.as_str(), v))
        });
        let p = aws::project::project(&tool.output, raw_items, limit, only, &self.policy);
        let mut truncated = p.truncated;
        if fetched.more_pages {
            truncated.insert(
                0,
                format!(
                    "stopped after {} pages (the tool's cap); more results exist: narrow the call",
                    fetched.pages
                ),
            );
        }
        let mut body = json!({
            "environment": plan.environment,
            "count": p.items.len(),
            "items": p.items,
        });
        let b = body.as_object_mut().expect("object");
        if !truncated.is_empty() {
            b.insert("truncated".into(), json!(truncated.join("; ")));
        }
        if p.redactions > 0 {
            let kinds: Vec<&str> = p.redacted_kinds.iter().map(|k| k.as_str()).collect();
            b.insert(
                "redacted".into(),
                json!({"count": p.redactions, "kinds": kinds,
                       "note": "secrets in this output were replaced with [REDACTED:kind]; they are not recoverable through airlock"}),
            );
        }
        if let Some(n) = &tool.output.note {
            b.insert("note".into(), json!(n));
        }
        b.insert(
            "scope".into(),
            json!({"rule": plan.verdict.matched, "actions": sp.actions, "resources": sp.resources, "session_policy_sha256": sp.hash}),
        );
        body
    }
}

/// A destructive request refused because the policy is not signed: a tool error (not a
/// protocol error) that says why and that nothing was queued.
fn unsigned_answer(st: &Status, tool: &str) -> ToolAnswer {
    ToolAnswer::error(
        "policy_not_signed",
        format!(
            "Nothing was queued: `{tool}` needs a policy signed by a trusted approver, and the policy airlock is serving is not ({}). A human must review policy.toml and the tool files it enables and run `airlock policy sign`; then make this request again. Read tools keep working.",
            st.problem.as_deref().unwrap_or("no valid signature")
        ),
        json!({
            "policy_signature": {"signed": false, "manifest_hash": st.manifest_hash, "changes": st.changes},
            "what_you_can_do": "Tell the person you work with that the airlock policy needs their review and signature (`airlock policy status` shows what changed). You cannot sign it, and editing policy.toml or its signature file only keeps it unsigned."
        }),
    )
}

fn refusal_answer(r: Refusal, tool: &str) -> ToolAnswer {
    match &r {
        Refusal::UnknownTool(_) => ToolAnswer::error("unknown_tool", r.to_string(), json!({})),
        Refusal::BadArgument(a) => ToolAnswer::error(
            "invalid_argument",
            r.to_string(),
            json!({"field": a.field, "hint": "fix this argument and call again; tools/list shows each argument's schema"}),
        ),
        Refusal::Denied(v) => ToolAnswer::error(
            "refused",
            r.to_string(),
            json!({
                "rule": v.matched,
                "what_you_can_do": format!(
                    "Do not look for credentials or other ways around this: airlock is the only path to this infrastructure. Call describe_access to see what you may do. Destructive changes go through request_* tools, which queue the change for a human's approval; `{tool}` cannot be widened from here."
                ),
            }),
        ),
        Refusal::Scope(_) => ToolAnswer::error("scope", r.to_string(), json!({})),
    }
}

fn failure_answer(e: CallError, tool: &ToolSpec, env: &Environment) -> ToolAnswer {
    let denied = matches!(&e, CallError::Aws(a) if a.is_access_denied())
        || matches!(
            &e,
            CallError::Credentials(CredentialError::AssumeRole { .. })
        );
    tracing::warn!(tool = %tool.name, env = %env.name, error = %e, "tool call failed");
    let hint = if denied {
        format!(
            "AWS refused the scoped credential for `{}` in `{}`. This is a configuration problem for a human (the agent role's permissions or trust policy), not something to work around: report it and do not look for other credentials.",
            tool.name, env.name
        )
    } else {
        "the call failed on the AWS side; it may succeed if retried later".to_string()
    };
    let code = match &e {
        CallError::Aws(AwsError::Service { code, .. }) => Some(code.clone()),
        _ => None,
    };
    ToolAnswer::error(
        if denied {
            "aws_access_denied"
        } else {
            "aws_error"
        },
        e.to_string(),
        json!({"what_you_can_do": hint, "aws_code": code}),
    )
}
