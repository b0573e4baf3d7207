//! The call path, in one place: validate -> decide -> render the session policy -> mint
//! credentials -> signed request -> project and redact -> result. [`Engine::plan`] is the
//! first half (no I/O, no credentials) and is what `airlock explain` prints; [`Engine::call`]
//! runs the whole path and answers with types ([`answer`]); the MCP edge builds the JSON.
//!
//! - [`plan`]: validation, the decision and the session policy, as a [`Plan`].
//! - [`request`]: destructive calls (look at the resource, queue the request) and the
//!   request tools (`get_request`, `cancel_request`).
//! - [`answer`]: [`ToolOutput`] and [`ToolError`].

pub mod answer;
pub mod plan;
mod request;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

pub use answer::{ErrorKind, ToolError, ToolOutput, ToolResult};
pub use plan::{Plan, Refusal};

use crate::aws::call::{AwsCaller, Fetched, HttpCaller};
use crate::aws::{self, AwsError};
use crate::catalogue::{AwsSpec, Catalogue, Handler, Risk, ToolSpec};
use crate::credentials::{CredentialBroker, CredentialError, Role, ScopeRequest};
use crate::policy::access::{self, SignatureSummary};
use crate::policy::signature::{Honoured, Integrity, Noted, SignatureMarks};
use crate::policy::{Decision, Environment, Policy};
use crate::queue::Queue;
use crate::scope::SessionPolicy;
use crate::timefmt::now_ms;
use answer::{Listing, Redacted, ScopeSummary};

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

pub struct Engine {
    pub policy: Arc<Policy>,
    pub catalogue: Arc<Catalogue>,
    pub broker: Arc<dyn CredentialBroker>,
    /// Whose role the AWS calls run under: the agent's (serve) or the executor's (the executor
    /// looking at a resource before it acts).
    role: Role,
    /// Sends the signed AWS requests.
    aws: Arc<dyn AwsCaller>,
    /// The queue file, opened on first use (so start-up stays fast for read-only sessions).
    db_path: Option<PathBuf>,
    queue: tokio::sync::OnceCell<Arc<Queue>>,
    /// The signed-policy check run before every destructive request (`airlock serve` sets it).
    integrity: Option<Arc<Integrity>>,
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
            role: Role::Agent,
            aws: Arc::new(HttpCaller::default()),
            db_path: None,
            queue: tokio::sync::OnceCell::new(),
            integrity: None,
        }
    }

    /// Run AWS calls under each environment's executor role instead of its agent role.
    pub fn as_executor(mut self) -> Self {
        self.role = Role::Executor;
        self
    }

    /// Send AWS requests through `aws` (a fake endpoint in tests) instead of over HTTP.
    pub fn with_aws(mut self, aws: Arc<dyn AwsCaller>) -> Self {
        self.aws = aws;
        self
    }

    /// The AWS caller this engine sends through.
    pub fn aws(&self) -> &Arc<dyn AwsCaller> {
        &self.aws
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
    pub async fn queue(&self) -> Result<Arc<Queue>, ToolError> {
        let Some(path) = &self.db_path else {
            return Err(ToolError::new(
                ErrorKind::QueueUnavailable,
                "this airlock has no approval queue configured",
            ));
        };
        self.queue
            .get_or_try_init(|| async { Queue::open(path).await.map(Arc::new) })
            .await
            .cloned()
            .map_err(|e| ToolError::new(ErrorKind::QueueUnavailable, e.to_string()))
    }

    /// Run a tool call end to end.
    pub async fn call(
        &self,
        tool_name: &str,
        input: &Map<String, Value>,
        ctx: &CallContext,
    ) -> ToolResult {
        let (tool, plan) = self.plan(tool_name, input)?;
        match (plan.verdict.decision, tool.risk) {
            (Decision::Deny, _) => {
                return Err(Refusal::Denied(Box::new(plan.verdict)).into_error(tool_name));
            }
            (Decision::Approve, Risk::Destructive) => {
                if let Some(i) = &self.integrity {
                    let st = i.check_fresh(&*self.queue().await?).await;
                    if !st.signed {
                        return Err(request::unsigned(&st, tool_name));
                    }
                }
                return self.request(&tool, plan, ctx).await;
            }
            (Decision::Approve, _) => {
                return Err(ToolError::new(
                    ErrorKind::NeedsApproval {
                        rule: plan.verdict.matched.clone(),
                    },
                    format!(
                        "`{}` in `{}` needs a human's approval ({}: {}). Only destructive tools can be queued; ask the person you work with, or call describe_access for what you may do directly.",
                        plan.tool,
                        plan.environment.as_deref().unwrap_or("?"),
                        plan.verdict.matched,
                        plan.verdict.reason
                    ),
                ));
            }
            (Decision::Allow, Risk::Destructive) => {
                // Policy validation forbids this; refuse rather than run a destructive call.
                return Err(ToolError::new(
                    ErrorKind::Refused { rule: None },
                    "destructive tools only ever run through the approval queue",
                ));
            }
            (Decision::Allow, _) => {}
        }
        match &tool.handler {
            Handler::DescribeAccess => Ok(ToolOutput::Access(Box::new(
                self.describe_access(plan.environment.as_deref()).await,
            ))),
            Handler::RequestStatus | Handler::RequestCancel => {
                self.request_tool(&tool, &plan.arguments, ctx).await
            }
            Handler::Aws(spec) => {
                let (Some(env), Some(sp)) = (&plan.env, &plan.session_policy) else {
                    return Err(ToolError::internal(
                        "an allowed AWS call without an environment or a session policy",
                    ));
                };
                match self.run_aws(&tool, spec, env, &plan, sp, ctx).await {
                    Ok(fetched) => Ok(ToolOutput::Listing(Box::new(
                        self.listing(&tool, &plan, sp, fetched),
                    ))),
                    Err(e) => Err(failure(e, &tool, env)),
                }
            }
        }
    }

    /// describe_access, with whether destructive requests are accepted now.
    async fn describe_access(&self, only: Option<&str>) -> access::Access {
        let mut out = access::describe(&self.policy, &self.catalogue, only);
        if let Some(i) = &self.integrity {
            let st = match self.queue().await {
                Ok(q) => i.check_fresh(&*q).await,
                Err(_) => i.check(),
            };
            out.policy_signature = Some(SignatureSummary::of(&st));
        }
        out
    }

    async fn run_aws(
        &self,
        tool: &ToolSpec,
        spec: &AwsSpec,
        env: &Environment,
        plan: &Plan,
        sp: &SessionPolicy,
        ctx: &CallContext,
    ) -> Result<Fetched, CallError> {
        let source_identity = ctx.source_identity();
        let creds = self
            .broker
            .credentials(ScopeRequest {
                env,
                role: self.role,
                policy: sp,
                tool: &tool.name,
                source_identity: &source_identity,
            })
            .await?;
        let fetched = self
            .aws
            .fetch(aws::call::Fetch {
                spec,
                items_path: tool.output.items.as_deref(),
                env,
                args: &plan.arguments,
                creds: &creds,
            })
            .await?;
        Ok(fetched)
    }

    fn listing(&self, tool: &ToolSpec, plan: &Plan, sp: &SessionPolicy, f: Fetched) -> Listing {
        let limit = tool
            .output
            .limit_argument
            .as_ref()
            .and_then(|l| plan.arguments.get(l))
            .and_then(Value::as_u64)
            .map(|l| l as usize);
        let raw_items = match (tool.output.items.is_some(), f.document) {
            (true, _) => f.items,
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
        if f.more_pages {
            truncated.insert(
                0,
                format!(
                    "stopped after {} pages (the tool's cap); more results exist: narrow the call",
                    f.pages
                ),
            );
        }
        Listing {
            environment: plan.environment.clone(),
            count: p.items.len(),
            items: p.items,
            truncated: (!truncated.is_empty()).then(|| truncated.join("; ")),
            redacted: (p.redactions > 0).then(|| Redacted {
                count: p.redactions,
                kinds: p.redacted_kinds.iter().map(|k| k.as_str().to_string()).collect(),
                note: "secrets in this output were replaced with [REDACTED:kind]; they are not recoverable through airlock",
            }),
            note: tool.output.note.clone(),
            scope: ScopeSummary {
                rule: plan.verdict.matched.clone(),
                actions: sp.actions.clone(),
                resources: sp.resources.clone(),
                session_policy_sha256: sp.hash.clone(),
            },
        }
    }
}

/// The queue remembers the newest policy signature honoured (rollback protection).
impl SignatureMarks for Queue {
    fn note<'a>(&'a self, policy: &'a str, h: &'a Honoured) -> Noted<'a> {
        Box::pin(async move {
            let (at, by, hash) = (h.signed_at_ms, &h.signer, &h.manifest_hash);
            self.note_policy_signature(policy, at, by, hash, now_ms())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// A failure after the policy allowed the call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Credentials(#[from] CredentialError),
    #[error("{0}")]
    Aws(#[from] AwsError),
}

/// Tell the person; retrying changes nothing.
const TELL_THE_PERSON: &str = "This is not something to fix or work around from here: tell the person you work with, and do not retry or look for other credentials.";

/// A call that failed after it was allowed, as the agent is told: one short sentence saying
/// whose problem it is, and what to do. The detail (the error chain) goes to stderr at debug
/// level only.
fn failure(e: CallError, tool: &ToolSpec, env: &Environment) -> ToolError {
    tracing::warn!(tool = %tool.name, env = %env.name, error = %e, "tool call failed");
    let (t, en) = (&tool.name, &env.name);
    match e {
        CallError::Credentials(CredentialError::Config { .. } | CredentialError::NoExecutorRole(_) | CredentialError::Empty(_)) => {
            ToolError::new(
                ErrorKind::AwsConfiguration,
                format!("`{t}` did not run: airlock's own AWS configuration for `{en}` is not usable (a problem on the airlock side, not in your call)"),
            )
            .advise(TELL_THE_PERSON)
        }
        CallError::Credentials(CredentialError::BaseCredentials { .. }) => ToolError::new(
            ErrorKind::AwsCredentials,
            format!("`{t}` did not run: airlock could not obtain its own AWS credential for `{en}` (its credential source failed)"),
        )
        .advise(TELL_THE_PERSON),
        CallError::Credentials(CredentialError::Unreachable { endpoint, message }) => ToolError::new(
            ErrorKind::AwsUnreachable,
            format!("`{t}` did not run: cannot reach STS at {endpoint} ({message})"),
        )
        .advise("The AWS endpoint is down or unreachable from the airlock host. Tell the person you work with; retrying now will fail the same way."),
        CallError::Credentials(CredentialError::Throttled { code, .. }) => ToolError::new(
            ErrorKind::AwsThrottled { aws_code: Some(code.clone()) },
            format!("`{t}` did not run: STS is throttling airlock ({code})"),
        )
        .advise("Wait a minute, then try once more; do not retry in a loop."),
        CallError::Credentials(e @ CredentialError::AssumeRole { .. }) => {
            let CredentialError::AssumeRole { code, .. } = &e else { unreachable!() };
            ToolError::new(ErrorKind::AwsAccessDenied { aws_code: Some(code.clone()) }, e.to_string())
                .advise(denied_advice(t, en))
        }
        CallError::Aws(a @ AwsError::Service { .. }) => {
            let AwsError::Service { code, message, .. } = &a else { unreachable!() };
            let aws_code = Some(code.clone());
            if a.is_access_denied() {
                ToolError::new(ErrorKind::AwsAccessDenied { aws_code }, a.to_string()).advise(denied_advice(t, en))
            } else if code.contains("Throttl") || code == "RequestLimitExceeded" || code == "SlowDown" {
                ToolError::new(ErrorKind::AwsThrottled { aws_code }, format!("AWS is throttling `{t}` in `{en}` ({code})"))
                    .advise("Wait a minute, then try once more; do not retry in a loop.")
            } else {
                ToolError::new(ErrorKind::Aws { aws_code }, format!("AWS refused `{t}` in `{en}` ({code}): {message}"))
                    .advise("AWS received the call and refused it: check the arguments against the error; the same call will fail the same way.")
            }
        }
        CallError::Aws(AwsError::Transport { service, endpoint, .. }) => ToolError::new(
            ErrorKind::AwsUnreachable,
            format!("`{t}` did not complete: cannot reach {service} at {endpoint}"),
        )
        .advise("The AWS endpoint is down or unreachable from the airlock host. Tell the person you work with; retrying now will fail the same way."),
        CallError::Aws(e @ (AwsError::Signing(_) | AwsError::Decode { .. })) => {
            ToolError::new(ErrorKind::Aws { aws_code: None }, format!("`{t}` failed inside airlock: {e}"))
                .advise(TELL_THE_PERSON)
        }
    }
}

fn denied_advice(tool: &str, env: &str) -> String {
    format!(
        "AWS refused the scoped credential for `{tool}` in `{env}`. This is a configuration problem for a human (the agent role's permissions or trust policy), not something to work around: report it and do not look for other credentials."
    )
}

#[cfg(test)]
mod tests;
