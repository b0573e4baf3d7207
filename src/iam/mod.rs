//! The AWS IAM documents a deployment needs, generated from the policy and the catalogue, so
//! that every role holds exactly what the enabled tools use:
//!
//! - the **broker** principal (the credential `airlock serve` runs with): `sts:AssumeRole` and
//!   `sts:SetSourceIdentity` on the agent roles, `iam:SimulatePrincipalPolicy` on its own ARN
//!   (for `airlock doctor`), nothing else, and an explicit deny on the executor roles;
//! - each **agent role**: the IAM actions of the read tools the policy enables in that
//!   environment (and of the read tool a request tool looks at its resource with), on the
//!   tools' resource templates filled with the environment's partition, region and account,
//!   narrowed to the allowing rules' `resources` globs where the template can express them (an
//!   unsigned policy still serves reads, so IAM, not the policy file, must bound them);
//!   trusted by the broker only, and only with a `SourceIdentity` set (airlock sets
//!   `airlock-...`);
//! - a **permission boundary** for the agent roles: only those read actions, an explicit deny
//!   on everything else and, by name, on delete-class verbs;
//! - each **executor role**: the actions of the destructive tools the policy sends for approval,
//!   the read tool it re-checks the resource with, and the backup steps
//!   ([`crate::backup::grants`]); trusted by the operator principal only, optionally
//!   with MFA;
//! - the **operator** principal: `sts:AssumeRole` and `sts:SetSourceIdentity` on the executor
//!   roles;
//! - each environment's **`log_export_bucket`** (the `logs_export` backup): a bucket policy
//!   letting that environment's CloudWatch Logs service (`logs.REGION.amazonaws.com`, for log
//!   groups of its account and region only) read the bucket's ACL and put objects under
//!   `airlock/` with `bucket-owner-full-control`, nothing else.
//!
//! Everything here is pure: the same policy, catalogue and principals give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

pub use buckets::{log_export_bucket_file, logs_service};
pub use setup::setup_commands;

mod agent;
mod buckets;
mod executor;
mod principals;
mod setup;

use crate::catalogue::{Catalogue, Risk, ToolSpec};
use crate::policy::{Decision, Environment, Policy};

/// Who may assume what.
#[derive(Debug, Clone, Default)]
pub struct Principals {
    /// The IAM user or role whose credential `airlock serve` runs with.
    pub broker: String,
    /// The IAM user or role whose credential `airlock executor` runs with.
    pub operator: Option<String>,
    /// The executor roles' trust requires `aws:MultiFactorAuthPresent`.
    pub require_mfa: bool,
}

/// What a document is for, which decides how it is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An identity policy for the broker principal.
    Broker,
    /// An identity policy for the operator principal.
    Operator,
    /// A managed policy used as the agent roles' permission boundary.
    Boundary,
    /// An agent role's permissions (inline policy) for one environment.
    AgentPermissions { env: String },
    /// An agent role's trust policy for one environment.
    AgentTrust { env: String },
    /// An executor role's permissions for one environment.
    ExecutorPermissions { env: String },
    /// An executor role's trust policy for one environment.
    ExecutorTrust { env: String },
    /// The bucket policy of a `log_export_bucket` (shared by the environments naming it).
    LogExportBucket { bucket: String },
}

/// One generated document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file name it is written under, e.g. `agent-staging-permissions.json`.
    pub file: String,
    pub kind: Kind,
    /// One line saying what it is.
    pub title: String,
    pub json: Value,
    /// What the document cannot say and airlock enforces alone (e.g. a rule's `resources` that
    /// the tool's resource template cannot express); one line each.
    pub notes: Vec<String>,
}

impl Document {
    /// Pretty JSON with a trailing newline, as written to disk.
    pub fn text(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The size IAM counts (JSON without whitespace).
    pub fn iam_size(&self) -> usize {
        serde_json::to_string(&self.json).map_or(0, |s| s.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    #[error(
        "{what} `{arn}` is not an IAM principal ARN; write it like \"arn:aws:iam::123456789012:user/airlock-broker\" or \"arn:aws:iam::123456789012:role/NAME\""
    )]
    BadPrincipal { what: &'static str, arn: String },
    #[error(
        "environment(s) {0} run approved requests (executor_role is set), so the executor roles need a trusted principal: give the operator's principal ARN (--operator-principal)"
    )]
    NoOperator(String),
    #[error(
        "tool `{tool}` would give the agent role in `{env}` the action `{action}`, which the agent boundary denies (a delete-class verb); a tool that changes or removes things must be risk = \"destructive\", so it runs under the executor role after approval"
    )]
    DeniedAction {
        tool: String,
        env: String,
        action: String,
    },
    #[error(
        "{file} would be {size} characters; IAM accepts at most {limit} for this kind of policy. Enable fewer tools in the policy, or split the environment"
    )]
    TooLarge {
        file: String,
        size: usize,
        limit: usize,
    },
}

/// IAM's size limits (characters, whitespace not counted).
const MAX_MANAGED: usize = 6144;
const MAX_INLINE_ROLE: usize = 10240;
const MAX_INLINE_USER: usize = 2048;
const MAX_TRUST: usize = 2048;
const MAX_BUCKET_POLICY: usize = 20480;

/// Where the `logs_export` backup writes, under each environment's `log_export_bucket`
/// (the executor exports to `airlock/REQUEST_ID`).
pub const LOG_EXPORT_PREFIX: &str = "airlock/";

/// Services whose delete-class verbs the agent boundary denies by name, besides every service
/// the catalogue uses.
const BOUNDARY_SERVICES: &[&str] = &["ec2", "s3", "rds", "logs", "dynamodb", "lambda", "kms"];
/// Verbs that remove or detach things: never an agent's, whatever else changes.
const DELETE_VERBS: &[&str] = &[
    "Delete",
    "Terminate",
    "Remove",
    "Purge",
    "Detach",
    "Disassociate",
    "Revoke",
    "Deregister",
];
/// IAM and STS actions that would let an agent session grow its own power.
const ESCALATION: &[&str] = &[
    "iam:Create*",
    "iam:Put*",
    "iam:Attach*",
    "iam:Update*",
    "iam:Add*",
    "iam:Set*",
    "iam:Upload*",
    "iam:PassRole",
    "sts:AssumeRole",
    "sts:GetFederationToken",
];

static PRINCIPAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:(root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)$")
        .expect("principal regex")
});

/// Is `arn` an IAM user, role or account-root ARN?
pub fn check_principal(what: &'static str, arn: &str) -> Result<(), IamError> {
    if PRINCIPAL.is_match(arn) {
        Ok(())
    } else {
        Err(IamError::BadPrincipal {
            what,
            arn: arn.into(),
        })
    }
}

/// May some call of `tool` in `env` be allowed (or, for destructive tools, queued)? A deny rule
/// without `resources` that covers it switches it off entirely.
pub fn enabled(policy: &Policy, tool: &ToolSpec, env: &str) -> bool {
    let want = if tool.risk == Risk::Destructive {
        Decision::Approve
    } else {
        Decision::Allow
    };
    let off = policy.rules.iter().any(|r| {
        r.decision == Decision::Deny && r.resources.is_none() && r.covers(&tool.name, env)
    });
    !off && policy
        .rules
        .iter()
        .any(|r| r.decision == want && r.covers(&tool.name, env))
}

/// Fill a resource template for a role's permissions: the environment's partition, region and
/// account; every argument placeholder becomes `*` (the session policy of each call names the
/// exact resource).
pub fn fill_template(tmpl: &str, env: &Environment) -> String {
    let filled = crate::scope::expand(tmpl, |name, out| {
        match name {
            "partition" => out.push_str(&env.partition),
            "region" => out.push_str(&env.region),
            "account" => out.push_str(&env.account),
            _ => {
                if !out.ends_with('*') {
                    out.push('*');
                }
            }
        }
        Ok::<(), std::convert::Infallible>(())
    });
    let Ok(filled) = filled;
    filled
}

/// `read_logs` -> `ReadLogs` (statement ids are letters and digits).
fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn region_condition(regions: &[String]) -> Value {
    let v = if regions.len() == 1 {
        json!(regions[0])
    } else {
        json!(regions)
    };
    json!({"StringEquals": {"aws:RequestedRegion": v}})
}

fn sorted(v: impl IntoIterator<Item = String>) -> Vec<String> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

fn statement(
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
    regions: &[String],
) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": sorted(resources),
        "Condition": region_condition(regions),
    })
}

/// A tool's own grant in `env`: its IAM actions on its filled resource templates.
fn tool_statement(
    prefix: &str,
    tool: &ToolSpec,
    env: &Environment,
) -> Option<(Vec<String>, Value)> {
    let aws = tool.aws()?;
    let resources = aws
        .resources
        .iter()
        .map(|t| fill_template(t, env))
        .collect();
    Some((
        aws.iam_actions.clone(),
        statement(
            format!("{prefix}{}", camel(&tool.name)),
            aws.iam_actions.clone(),
            resources,
            std::slice::from_ref(&env.region),
        ),
    ))
}

/// The read tools the agent role of `env` calls AWS with: the enabled read tools, and the
/// describe tool of each enabled destructive tool (used when the request is made). Sorted.
pub fn agent_tools<'a>(
    policy: &Policy,
    catalogue: &'a Catalogue,
    env: &str,
) -> Vec<(&'a ToolSpec, &'a ToolSpec)> {
    // (the tool that needs it, the tool whose actions are granted)
    let mut out: BTreeMap<&str, (&ToolSpec, &ToolSpec)> = BTreeMap::new();
    for t in catalogue.tools() {
        if !enabled(policy, t, env) {
            continue;
        }
        match t.risk {
            Risk::Destructive => {
                if let Some(d) = t.describe.as_ref().and_then(|d| catalogue.get(&d.tool))
                    && d.aws().is_some()
                {
                    out.entry(d.name.as_str()).or_insert((t, d));
                }
            }
            _ if t.aws().is_some() => {
                out.insert(t.name.as_str(), (t, t));
            }
            _ => {}
        }
    }
    out.into_values().collect()
}

/// The destructive tools of `env` that go through approval (and so run under its executor role).
pub fn executor_tools<'a>(
    policy: &Policy,
    catalogue: &'a Catalogue,
    env: &str,
) -> Vec<&'a ToolSpec> {
    catalogue
        .tools()
        .filter(|t| t.risk == Risk::Destructive && t.aws().is_some() && enabled(policy, t, env))
        .map(|t| t.as_ref())
        .collect()
}

fn check_size(file: &str, json: &Value, limit: usize) -> Result<(), IamError> {
    let size = serde_json::to_string(json).map_or(0, |s| s.len());
    if size > limit {
        return Err(IamError::TooLarge {
            file: file.into(),
            size,
            limit,
        });
    }
    Ok(())
}

/// Does an IAM action pattern (with `*` and `?`) match `action`? Case-insensitive, as in IAM.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let mut re = String::from("(?i)^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).is_ok_and(|r| r.is_match(action))
}

/// The delete-class and escalation actions the agent boundary denies by name.
pub fn boundary_denied(catalogue: &Catalogue) -> Vec<String> {
    let mut services: BTreeSet<String> = BOUNDARY_SERVICES.iter().map(|s| s.to_string()).collect();
    let mut exact = BTreeSet::new();
    for t in catalogue.tools() {
        if let Some(a) = t.aws() {
            for act in &a.iam_actions {
                if let Some((svc, _)) = act.split_once(':') {
                    services.insert(svc.to_string());
                }
                if t.risk == Risk::Destructive {
                    exact.insert(act.clone());
                }
            }
        }
    }
    let mut out: Vec<String> = services
        .iter()
        .filter(|s| *s != "iam" && *s != "sts")
        .flat_map(|s| DELETE_VERBS.iter().map(move |v| format!("{s}:{v}*")))
        .collect();
    out.extend(ESCALATION.iter().map(|s| s.to_string()));
    out.push("iam:Delete*".into());
    // A destructive tool's own actions, where no pattern above names them already.
    out.extend(
        exact
            .into_iter()
            .filter(|a| !ESCALATION.iter().any(|p| action_matches(p, a)))
            .filter(|a| {
                !DELETE_VERBS
                    .iter()
                    .any(|v| a.split_once(':').is_some_and(|(_, x)| x.starts_with(v)))
            }),
    );
    sorted(out)
}

/// Every document for this policy and catalogue.
pub fn documents(
    policy: &Policy,
    catalogue: &Catalogue,
    principals: &Principals,
) -> Result<Vec<Document>, IamError> {
    check_principal("the broker principal", &principals.broker)?;
    if let Some(o) = &principals.operator {
        check_principal("the operator principal", o)?;
    }
    let with_executor: Vec<&str> = policy
        .environments
        .values()
        .filter(|e| e.executor_role.is_some())
        .map(|e| e.name.as_str())
        .collect();
    if principals.operator.is_none() && !with_executor.is_empty() {
        return Err(IamError::NoOperator(with_executor.join(", ")));
    }
    let denied = boundary_denied(catalogue);
    let mut docs = Vec::new();
    let mut granted = BTreeSet::new();
    for env in policy.environments.values() {
        docs.extend(agent::permissions(
            policy,
            catalogue,
            env,
            &denied,
            &mut granted,
        )?);
        docs.push(agent::trust(env, principals)?);
        docs.extend(executor::documents(policy, catalogue, env, principals)?);
    }
    docs.push(principals::broker(policy, principals)?);
    docs.extend(principals::operator(policy, principals)?);
    docs.extend(buckets::log_export_bucket_policies(policy)?);
    docs.push(agent::boundary(granted, denied)?);
    docs.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(docs)
}

#[cfg(test)]
mod tests;
