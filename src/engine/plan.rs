//! The first half of the call path, with no I/O and no credentials: validate the arguments,
//! decide, and render the session policy. What `airlock explain` prints.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Engine;
use super::answer::{ErrorKind, ToolError};
use crate::catalogue::args::{self, ArgError, Args};
use crate::catalogue::{Handler, Risk, ToolSpec};
use crate::policy::{CallFacts, Decision, Environment, Verdict};
use crate::scope::{self, ScopeError, SessionPolicy};

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
    /// The environment the call names, as the policy defines it (validated to exist).
    #[serde(skip)]
    pub env: Option<Arc<Environment>>,
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

impl Refusal {
    /// The refusal as the agent is told, for a call of `tool`.
    pub fn into_error(self, tool: &str) -> ToolError {
        let message = self.to_string();
        match self {
            Refusal::UnknownTool(_) => ToolError::new(ErrorKind::UnknownTool, message),
            Refusal::BadArgument(a) => {
                ToolError::new(ErrorKind::InvalidArgument { field: a.field }, message).advise(
                    "fix this argument and call again; tools/list shows each argument's schema",
                )
            }
            Refusal::Denied(v) => ToolError::new(
                ErrorKind::Refused {
                    rule: Some(v.matched),
                },
                message,
            )
            .advise(format!(
                "Do not look for credentials or other ways around this: airlock is the only path to this infrastructure. Call describe_access to see what you may do. Destructive changes go through request_* tools, which queue the change for a human's approval; `{tool}` cannot be widened from here."
            )),
            Refusal::Scope(_) => ToolError::new(ErrorKind::Scope, message),
        }
    }
}

impl Engine {
    /// Validate, decide and render, without I/O.
    pub fn plan(
        &self,
        tool_name: &str,
        input: &Map<String, Value>,
    ) -> Result<(Arc<ToolSpec>, Plan), ToolError> {
        self.try_plan(tool_name, input)
            .map_err(|r| r.into_error(tool_name))
    }

    /// [`Self::plan`], with the refusal as a [`Refusal`] (what `airlock explain` prints).
    pub fn try_plan(
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
        let env = environment
            .as_deref()
            .and_then(|e| self.policy.environments.get(e))
            .cloned();
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
        let session_policy = match (&tool.handler, verdict.decision, &env) {
            (Handler::Aws(_), Decision::Allow | Decision::Approve, Some(env)) => {
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
            env,
        };
        Ok((tool, plan))
    }
}
