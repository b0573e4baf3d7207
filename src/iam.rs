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

use crate::backup::grants as backup_grants;
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

/// The `resources` globs of the allow/approve rules that enable `tool` in `env`, or `None` when
/// one of them has no `resources` (any resource).
fn rule_globs(policy: &Policy, tool: &str, env: &str) -> Option<Vec<String>> {
    let mut out = BTreeSet::new();
    for r in &policy.rules {
        if r.decision == Decision::Deny || !r.covers(tool, env) {
            continue;
        }
        match &r.resources {
            None => return None,
            Some(gs) => out.extend(gs.iter().map(|g| g.text.clone())),
        }
    }
    Some(out.into_iter().collect())
}

/// The placeholders of a template other than partition, region and account.
fn argument_placeholders(tmpl: &str) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    let mut rest = tmpl;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else { break };
        let p = &after[..j];
        if !matches!(p, "partition" | "region" | "account") {
            out.insert(p);
        }
        rest = &after[j + 1..];
    }
    out
}

/// A read tool's resources on the agent role of `env`: its templates with the rules'
/// `resources` globs in place of the resource argument where the template can express them
/// (`arn:...:log-group:${log_group}` with `/app/staging/*` gives
/// `arn:...:log-group:/app/staging/*`; a policy glob's `*` and IAM's `*` both match any run of
/// characters), else the filled templates and a note saying airlock alone enforces the globs.
fn agent_resources(
    policy: &Policy,
    tool: &ToolSpec,
    env: &Environment,
    shared_describe: bool,
) -> (Vec<String>, Option<String>) {
    let Some(aws) = tool.aws() else {
        return (Vec::new(), None);
    };
    let filled: Vec<String> = aws
        .resources
        .iter()
        .map(|t| fill_template(t, env))
        .collect();
    let Some(globs) = rule_globs(policy, &tool.name, &env.name) else {
        return (filled, None);
    };
    let keep = |why: String| {
        let note = format!(
            "{} in {}: policy.toml limits it to {}, but {why}; the agent role keeps {} and airlock alone enforces the limit",
            tool.name,
            env.name,
            globs.join(", "),
            filled.join(", ")
        );
        (filled.clone(), Some(note))
    };
    if shared_describe {
        return keep(
            "a request tool also calls it (to look at the resource it names), so IAM cannot hold it to these globs".into(),
        );
    }
    let res_args: Vec<&str> = tool.resource_arguments().map(|a| a.name.as_str()).collect();
    let [arg] = res_args.as_slice() else {
        return keep("it has no single resource argument to put them in".into());
    };
    if let Some(g) = globs.iter().find(|g| g.contains(['?', '$'])) {
        return keep(format!(
            "`{g}` holds a character IAM reads as a wildcard or variable"
        ));
    }
    let mut out = Vec::new();
    for t in &aws.resources {
        let ps = argument_placeholders(t);
        if ps.len() != 1 || !ps.contains(arg) {
            return keep(format!(
                "its resource template `{t}` does not name the resource by its `{arg}` alone"
            ));
        }
        let placeholder = format!("${{{arg}}}");
        for g in &globs {
            out.push(fill_template(&t.replace(&placeholder, g), env));
        }
    }
    (sorted(out), None)
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

/// The tools an enabled request tool of `env` looks at its resource with.
fn agent_describes<'a>(policy: &Policy, catalogue: &'a Catalogue, env: &str) -> BTreeSet<&'a str> {
    catalogue
        .tools()
        .filter(|t| t.risk == Risk::Destructive && enabled(policy, t, env))
        .filter_map(|t| t.describe.as_ref())
        .map(|d| d.tool.as_str())
        .collect()
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

/// A backup step merged across tools: actions, resources, regions.
type Merged = (BTreeSet<String>, BTreeSet<String>, Vec<String>);

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
    let mut agent_actions = BTreeSet::new();

    for env in policy.environments.values() {
        let mut statements = Vec::new();
        let mut notes = Vec::new();
        for (needs, grants) in agent_tools(policy, catalogue, &env.name) {
            let prefix = if needs.name == grants.name {
                ""
            } else {
                "Describe"
            };
            let shared = needs.name != grants.name
                || agent_describes(policy, catalogue, &env.name).contains(grants.name.as_str());
            let (resources, note) = agent_resources(policy, grants, env, shared);
            notes.extend(note);
            if let Some((actions, mut st)) = tool_statement(prefix, grants, env) {
                st["Resource"] = json!(resources);
                for a in &actions {
                    if denied.iter().any(|p| action_matches(p, a)) {
                        return Err(IamError::DeniedAction {
                            tool: needs.name.clone(),
                            env: env.name.clone(),
                            action: a.clone(),
                        });
                    }
                }
                agent_actions.extend(actions);
                statements.push(st);
            }
        }
        if !statements.is_empty() {
            let file = format!("agent-{}-permissions.json", env.name);
            let json = json!({"Version": "2012-10-17", "Statement": statements});
            check_size(&file, &json, MAX_INLINE_ROLE)?;
            docs.push(Document {
                file,
                kind: Kind::AgentPermissions {
                    env: env.name.clone(),
                },
                title: format!(
                    "permissions of the agent role {} (read actions of the tools enabled in {})",
                    env.agent_role, env.name
                ),
                json,
                notes,
            });
        }
        let file = format!("agent-{}-trust.json", env.name);
        let json = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "OnlyTheAirlockBroker",
                "Effect": "Allow",
                "Principal": {"AWS": principals.broker},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {"StringLike": {"sts:SourceIdentity": "airlock-*"}},
            }]
        });
        check_size(&file, &json, MAX_TRUST)?;
        docs.push(Document {
            file,
            kind: Kind::AgentTrust {
                env: env.name.clone(),
            },
            title: format!(
                "trust policy of {}: only the broker, with a SourceIdentity",
                env.agent_role
            ),
            json,
            notes: Vec::new(),
        });

        let (Some(executor_role), Some(operator)) = (&env.executor_role, &principals.operator)
        else {
            continue;
        };
        let tools = executor_tools(policy, catalogue, &env.name);
        if tools.is_empty() {
            continue;
        }
        let mut statements = Vec::new();
        let mut seen = BTreeSet::new();
        for t in &tools {
            if let Some((_, st)) = tool_statement("Run", t, env) {
                statements.push(st);
            }
            if let Some(d) = t.describe.as_ref().and_then(|d| catalogue.get(&d.tool))
                && seen.insert(d.name.clone())
                && let Some((_, st)) = tool_statement("Describe", d, env)
            {
                statements.push(st);
            }
        }
        // Backups, merged by kind of step across the tools.
        let mut backups: BTreeMap<&'static str, Merged> = BTreeMap::new();
        for t in &tools {
            let (Some(kind), Some(aws)) = (t.backup, t.aws()) else {
                continue;
            };
            let resources: Vec<String> = aws
                .resources
                .iter()
                .map(|r| fill_template(r, env))
                .collect();
            for g in backup_grants(kind, env, &resources) {
                let e = backups.entry(g.sid).or_default();
                e.0.extend(g.actions);
                e.1.extend(g.resources);
                e.2 = g.regions;
            }
        }
        for (sid, (actions, resources, regions)) in backups {
            statements.push(statement(
                sid.into(),
                actions.into_iter().collect(),
                resources.into_iter().collect(),
                &regions,
            ));
        }
        let file = format!("executor-{}-permissions.json", env.name);
        let json = json!({"Version": "2012-10-17", "Statement": statements});
        check_size(&file, &json, MAX_INLINE_ROLE)?;
        docs.push(Document {
            file,
            kind: Kind::ExecutorPermissions {
                env: env.name.clone(),
            },
            title: format!(
                "permissions of the executor role {executor_role} (the approved actions and their backups in {})",
                env.name
            ),
            json,
            notes: Vec::new(),
        });
        let mut st = json!({
            "Sid": "OnlyTheOperator",
            "Effect": "Allow",
            "Principal": {"AWS": operator},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        });
        if principals.require_mfa {
            st["Condition"] = json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}});
        }
        let file = format!("executor-{}-trust.json", env.name);
        let json = json!({"Version": "2012-10-17", "Statement": [st]});
        check_size(&file, &json, MAX_TRUST)?;
        docs.push(Document {
            file,
            kind: Kind::ExecutorTrust {
                env: env.name.clone(),
            },
            title: format!(
                "trust policy of {executor_role}: only the operator{}",
                if principals.require_mfa {
                    ", with MFA"
                } else {
                    ""
                }
            ),
            json,
            notes: Vec::new(),
        });
    }

    let agent_roles = sorted(policy.environments.values().map(|e| e.agent_role.clone()));
    let executor_roles = sorted(
        policy
            .environments
            .values()
            .filter_map(|e| e.executor_role.clone()),
    );
    let mut statements = vec![
        json!({
            "Sid": "AssumeTheAgentRoles",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Resource": agent_roles,
        }),
        // `airlock doctor` asks the policy simulator what this principal may do (control 2);
        // on itself only, so it learns nothing about other principals.
        json!({
            "Sid": "SimulateItselfForDoctor",
            "Effect": "Allow",
            "Action": "iam:SimulatePrincipalPolicy",
            "Resource": principals.broker,
        }),
    ];
    if !executor_roles.is_empty() {
        statements.push(json!({
            "Sid": "NeverTheExecutorRoles",
            "Effect": "Deny",
            "Action": "sts:*",
            "Resource": executor_roles,
        }));
    }
    let json = json!({"Version": "2012-10-17", "Statement": statements});
    check_size("broker-policy.json", &json, MAX_INLINE_USER)?;
    docs.push(Document {
        file: "broker-policy.json".into(),
        kind: Kind::Broker,
        title: format!(
            "identity policy of the broker {}: assume the agent roles and simulate its own policy (for doctor), nothing else",
            principals.broker
        ),
        json,
        notes: Vec::new(),
    });
    if let Some(operator) = &principals.operator
        && !executor_roles.is_empty()
    {
        let json = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "AssumeTheExecutorRoles",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": executor_roles,
            }]
        });
        check_size("operator-policy.json", &json, MAX_INLINE_USER)?;
        docs.push(Document {
            file: "operator-policy.json".into(),
            kind: Kind::Operator,
            title: format!("identity policy of the operator {operator}: assume the executor roles"),
            json,
            notes: Vec::new(),
        });
    }

    docs.extend(log_export_bucket_policies(policy)?);

    let allowed: Vec<String> = agent_actions.into_iter().collect();
    let mut statements = Vec::new();
    if !allowed.is_empty() {
        statements.push(json!({
            "Sid": "AtMostTheReadTools",
            "Effect": "Allow",
            "Action": allowed,
            "Resource": "*",
        }));
        statements.push(json!({
            "Sid": "NothingElse",
            "Effect": "Deny",
            "NotAction": allowed,
            "Resource": "*",
        }));
    }
    statements.push(json!({
        "Sid": "NeverDeleteOrEscalate",
        "Effect": "Deny",
        "Action": denied,
        "Resource": "*",
    }));
    let json = json!({"Version": "2012-10-17", "Statement": statements});
    check_size("agent-boundary.json", &json, MAX_MANAGED)?;
    docs.push(Document {
        file: "agent-boundary.json".into(),
        kind: Kind::Boundary,
        title: "permission boundary for every agent role: read actions only, never delete".into(),
        json,
        notes: Vec::new(),
    });
    docs.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(docs)
}

/// The CloudWatch Logs service principal of `env`'s region.
pub fn logs_service(env: &Environment) -> String {
    let suffix = if env.partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("logs.{}.{suffix}", env.region)
}

/// The file a `log_export_bucket`'s policy is written to.
pub fn log_export_bucket_file(bucket: &str) -> String {
    format!("log-export-bucket-{bucket}.json")
}

/// One bucket policy per `log_export_bucket`: for each environment naming it, its region's
/// CloudWatch Logs service may read the bucket's ACL and put objects under
/// [`LOG_EXPORT_PREFIX`] with `bucket-owner-full-control`, for that environment's account and
/// log groups only (AWS's "export log data to Amazon S3" policy, narrowed to airlock's prefix).
fn log_export_bucket_policies(policy: &Policy) -> Result<Vec<Document>, IamError> {
    let mut by_bucket: BTreeMap<&str, Vec<&Environment>> = BTreeMap::new();
    for env in policy.environments.values() {
        if let Some(b) = &env.log_export_bucket {
            by_bucket.entry(b).or_default().push(env);
        }
    }
    let mut docs = Vec::new();
    for (bucket, envs) in by_bucket {
        let mut statements = Vec::new();
        for env in &envs {
            let p = &env.partition;
            let principal = json!({"Service": logs_service(env)});
            let source_arn = format!("arn:{p}:logs:{}:{}:log-group:*", env.region, env.account);
            let id = camel(&env.name);
            statements.push(json!({
                "Sid": format!("LogsReadsAcl{id}"),
                "Effect": "Allow",
                "Principal": principal,
                "Action": "s3:GetBucketAcl",
                "Resource": format!("arn:{p}:s3:::{bucket}"),
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": env.account},
                    "ArnLike": {"aws:SourceArn": source_arn},
                },
            }));
            statements.push(json!({
                "Sid": format!("LogsWritesExports{id}"),
                "Effect": "Allow",
                "Principal": principal,
                "Action": "s3:PutObject",
                "Resource": format!("arn:{p}:s3:::{bucket}/{LOG_EXPORT_PREFIX}*"),
                "Condition": {
                    "StringEquals": {
                        "s3:x-amz-acl": "bucket-owner-full-control",
                        "aws:SourceAccount": env.account,
                    },
                    "ArnLike": {"aws:SourceArn": source_arn},
                },
            }));
        }
        let file = log_export_bucket_file(bucket);
        let json = json!({"Version": "2012-10-17", "Statement": statements});
        check_size(&file, &json, MAX_BUCKET_POLICY)?;
        let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        docs.push(Document {
            file,
            kind: Kind::LogExportBucket {
                bucket: bucket.to_string(),
            },
            title: format!(
                "bucket policy of s3://{bucket}: CloudWatch Logs of {} may write log exports under {LOG_EXPORT_PREFIX}, nothing else",
                names.join(", ")
            ),
            json,
            notes: Vec::new(),
        });
    }
    Ok(docs)
}

/// `arn:aws:iam::123456789012:role/path/name` -> (`name`, `/path/`).
fn role_name(arn: &str) -> (String, String) {
    let rest = arn.split_once(":role/").map_or(arn, |(_, r)| r);
    match rest.rsplit_once('/') {
        Some((path, name)) => (name.to_string(), format!("/{path}/")),
        None => (rest.to_string(), "/".into()),
    }
}

/// The AWS CLI commands that create the roles and attach the documents, assuming they were
/// written to `dir`. For the operator to read and run (in the accounts the policy names).
pub fn setup_commands(
    policy: &Policy,
    docs: &[Document],
    principals: &Principals,
    dir: &str,
) -> Vec<String> {
    let has = |f: &str| docs.iter().any(|d| d.file == f);
    let mut out = Vec::new();
    let accounts: BTreeSet<(&str, &str)> = policy
        .environments
        .values()
        .map(|e| (e.partition.as_str(), e.account.as_str()))
        .collect();
    for (partition, account) in &accounts {
        out.push(format!("# in account {account}:"));
        out.push(format!(
            "aws iam create-policy --policy-name airlock-agent-boundary --policy-document file://{dir}/agent-boundary.json"
        ));
        for env in policy
            .environments
            .values()
            .filter(|e| e.account == *account && e.partition == *partition)
        {
            let (name, path) = role_name(&env.agent_role);
            out.push(format!(
                "aws iam create-role --role-name {name} --path {path} --assume-role-policy-document file://{dir}/agent-{}-trust.json --permissions-boundary arn:{partition}:iam::{account}:policy/airlock-agent-boundary",
                env.name
            ));
            let perm = format!("agent-{}-permissions.json", env.name);
            if has(&perm) {
                out.push(format!(
                    "aws iam put-role-policy --role-name {name} --policy-name airlock-agent --policy-document file://{dir}/{perm}"
                ));
            }
            if let Some(exec) = &env.executor_role {
                let perm = format!("executor-{}-permissions.json", env.name);
                if has(&perm) {
                    let (name, path) = role_name(exec);
                    out.push(format!(
                        "aws iam create-role --role-name {name} --path {path} --assume-role-policy-document file://{dir}/executor-{}-trust.json",
                        env.name
                    ));
                    out.push(format!(
                        "aws iam put-role-policy --role-name {name} --policy-name airlock-executor --policy-document file://{dir}/{perm}"
                    ));
                }
            }
        }
        let buckets: BTreeSet<&str> = policy
            .environments
            .values()
            .filter(|e| e.account == *account && e.partition == *partition)
            .filter_map(|e| e.log_export_bucket.as_deref())
            .collect();
        for bucket in buckets {
            let file = log_export_bucket_file(bucket);
            if has(&file) {
                out.push("# lets CloudWatch Logs write the exports taken before a log group is deleted (replaces the bucket's policy: merge by hand if it already has one)".into());
                out.push(format!(
                    "aws s3api put-bucket-policy --bucket {bucket} --policy file://{dir}/{file}"
                ));
            }
        }
    }
    let attach = |principal: &str, policy_name: &str, file: &str| {
        let kind = if principal.contains(":user/") {
            "user"
        } else {
            "role"
        };
        let name = principal.rsplit('/').next().unwrap_or(principal);
        format!(
            "aws iam put-{kind}-policy --{kind}-name {name} --policy-name {policy_name} --policy-document file://{dir}/{file}"
        )
    };
    out.push("# in the account of each principal:".into());
    out.push(attach(
        &principals.broker,
        "airlock-broker",
        "broker-policy.json",
    ));
    if let Some(o) = &principals.operator
        && has("operator-policy.json")
    {
        out.push(attach(o, "airlock-operator", "operator-policy.json"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_the_environment_and_widen_arguments() {
        let env = Environment {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            partition: "aws".into(),
            ..Default::default()
        };
        assert_eq!(
            fill_template(
                "arn:${partition}:logs:${region}:${account}:log-group:${log_group}:*",
                &env
            ),
            "arn:aws:logs:eu-west-1:123456789012:log-group:*:*"
        );
        assert_eq!(
            fill_template("arn:${partition}:s3:::${bucket}/${key}", &env),
            "arn:aws:s3:::*/*"
        );
        assert_eq!(fill_template("*", &env), "*");
    }

    #[test]
    fn statement_ids_are_alphanumeric() {
        assert_eq!(camel("request_delete_volume"), "RequestDeleteVolume");
        assert_eq!(camel("x"), "X");
    }

    #[test]
    fn principals_must_be_iam_arns() {
        assert!(check_principal("b", "arn:aws:iam::123456789012:user/airlock-broker").is_ok());
        assert!(check_principal("b", "arn:aws:iam::123456789012:role/ops/executor").is_ok());
        assert!(check_principal("b", "arn:aws:iam::123456789012:root").is_ok());
        for bad in [
            "*",
            "arn:aws:iam::*:user/x",
            "airlock-broker",
            "arn:aws:iam::12:user/x",
        ] {
            assert!(check_principal("b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names_and_paths() {
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/airlock-agent"),
            ("airlock-agent".into(), "/".into())
        );
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/ops/airlock-agent"),
            ("airlock-agent".into(), "/ops/".into())
        );
    }

    #[test]
    fn action_patterns() {
        assert!(action_matches("ec2:Delete*", "ec2:DeleteVolume"));
        assert!(action_matches("ec2:delete*", "EC2:DeleteVolume"));
        assert!(!action_matches("ec2:Delete*", "ec2:DescribeVolumes"));
        assert!(!action_matches("ec2:Delete*", "logs:DeleteLogGroup"));
    }
}
