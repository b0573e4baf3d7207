//! The per-call session policy: exactly the tool's IAM actions, on exactly the ARNs built from
//! the call's validated arguments, in the environment's region. This is the document sent as
//! `Policy` with AssumeRole, so the credentials a call runs under can do that one thing and
//! nothing else, whatever the agent role itself allows.
//!
//! Pure and deterministic: the same call renders the same bytes (and so the same hash, which is
//! the credential cache key).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::catalogue::ToolSpec;
use crate::catalogue::args::Args;
use crate::policy::Environment;

/// STS refuses inline session policies longer than this.
pub const MAX_POLICY_CHARS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionPolicy {
    /// The exact JSON text sent to STS.
    pub json: String,
    /// Hex SHA-256 of `json`.
    pub hash: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("tool `{0}` makes no AWS call, so it has no session policy")]
    NoAwsCall(String),
    #[error(
        "the session policy for this call would be {0} characters; STS accepts at most {MAX_POLICY_CHARS}. Narrow the call (fewer resources)"
    )]
    TooLarge(usize),
    #[error("argument `{0}` is missing or not a string, but the resource template needs it")]
    MissingArgument(String),
    #[error("argument `{0}` has a character that cannot appear in a resource ARN")]
    UnsafeValue(String),
}

/// Render the session policy for one validated call.
pub fn render(
    tool: &ToolSpec,
    env: &Environment,
    args: &Args,
) -> Result<SessionPolicy, ScopeError> {
    let aws = tool
        .aws()
        .ok_or_else(|| ScopeError::NoAwsCall(tool.name.clone()))?;
    let actions = aws.iam_actions.clone();
    let mut resources = Vec::with_capacity(aws.resources.len());
    for tmpl in &aws.resources {
        resources.push(if tmpl == "*" {
            "*".to_string()
        } else {
            fill_arn(tmpl, env, args)?
        });
    }
    document(actions, resources, &env.region)
}

/// A session policy for exact actions on exact resources in one region. Used by [`render`] and
/// by the executor's backup steps, whose resources are not arguments of a tool.
pub fn document(
    mut actions: Vec<String>,
    mut resources: Vec<String>,
    region: &str,
) -> Result<SessionPolicy, ScopeError> {
    actions.sort();
    actions.dedup();
    resources.sort();
    resources.dedup();
    let doc = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AirlockCall",
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        }]
    });
    let json = serde_json::to_string(&doc).unwrap_or_default();
    if json.chars().count() > MAX_POLICY_CHARS {
        return Err(ScopeError::TooLarge(json.chars().count()));
    }
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    Ok(SessionPolicy {
        json,
        hash,
        actions,
        resources,
    })
}

/// Walks a template: text outside `${...}` is copied as is, and each placeholder's name is handed
/// to `fill`, which appends its value to the output so far. An unclosed `${` is copied as is.
pub fn expand<E>(
    tmpl: &str,
    mut fill: impl FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(tmpl.len() + 32);
    let mut rest = tmpl;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        fill(&after[..j], &mut out)?;
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fill `${partition}`, `${region}`, `${account}` and `${argument}` in an ARN template.
/// Argument values were validated against their patterns; characters that would change an
/// ARN's meaning are refused again here, so a lax pattern cannot widen a policy.
pub fn fill_arn(tmpl: &str, env: &Environment, args: &Args) -> Result<String, ScopeError> {
    expand(tmpl, |name, out| {
        let value = match name {
            "partition" => &env.partition,
            "region" => &env.region,
            "account" => &env.account,
            arg => {
                let v = args
                    .get(arg)
                    .and_then(Value::as_str)
                    .ok_or_else(|| ScopeError::MissingArgument(arg.to_string()))?;
                if v.is_empty()
                    || v.chars().any(|c| {
                        matches!(c, '*' | '?' | '$' | '{' | '}' | '"' | '\\') || c.is_control()
                    })
                {
                    return Err(ScopeError::UnsafeValue(arg.to_string()));
                }
                v
            }
        };
        out.push_str(value);
        Ok(())
    })
}

#[cfg(test)]
mod tests;
