//! The call path, in one place: validate -> decide -> render the session policy -> mint
//! credentials -> signed request -> project and redact -> result. [`Engine::plan`] is the
//! first half (no I/O, no credentials) and is what `airlock explain` prints; [`Engine::call`]
//! runs the whole path.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::aws::{self, AwsError, call::Fetched};
use crate::catalogue::args::{self, ArgError, Args};
use crate::catalogue::{Catalogue, Handler, Risk, ToolSpec};
use crate::credentials::{CredentialBroker, CredentialError, ScopeRequest};
use crate::policy::{CallFacts, Decision, Environment, Policy, Verdict};
use crate::scope::{self, ScopeError, SessionPolicy};

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
    http: reqwest::Client,
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
            http: aws::call::http_client(),
        }
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
            // describe_access reads the policy only; it is always available.
            Handler::DescribeAccess => Verdict {
                decision: Decision::Allow,
                matched: "built-in".into(),
                reason: "describe_access is always available".into(),
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
        match plan.verdict.decision {
            Decision::Deny => {
                return refusal_answer(Refusal::Denied(Box::new(plan.verdict)), tool_name);
            }
            Decision::Approve => {
                return ToolAnswer::error(
                    "needs_approval",
                    format!(
                        "`{}` in `{}` needs a human's approval ({}: {}). Read tools cannot be queued; ask the person you work with, or call describe_access for what you may do directly.",
                        plan.tool,
                        plan.environment.as_deref().unwrap_or("?"),
                        plan.verdict.matched,
                        plan.verdict.reason
                    ),
                    json!({"decision": "approve", "rule": plan.verdict.matched}),
                );
            }
            Decision::Allow => {}
        }
        if tool.risk != Risk::Read {
            return ToolAnswer::error(
                "not_supported",
                format!(
                    "`{}` is a {} tool; this airlock runs only read tools directly",
                    tool.name,
                    tool.risk.as_str()
                ),
                json!({}),
            );
        }
        match &tool.handler {
            Handler::DescribeAccess => ToolAnswer::ok(crate::mcp::access::describe(
                &self.policy,
                &self.catalogue,
                plan.environment.as_deref(),
            )),
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
            &self.http,
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
        let p = aws::project::project(&tool.output, raw_items, limit, &self.policy);
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
    ToolAnswer::error(
        if denied {
            "aws_access_denied"
        } else {
            "aws_error"
        },
        e.to_string(),
        json!({"what_you_can_do": hint}),
    )
}
