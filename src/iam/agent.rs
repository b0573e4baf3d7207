//! The agent roles: per environment, the read actions of the tools the policy enables there
//! (narrowed to the rules' `resources` globs where IAM can express them), a trust policy that
//! admits only the broker with a SourceIdentity, and one permission boundary for them all.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    Document, IamError, Kind, MAX_INLINE_ROLE, MAX_MANAGED, MAX_TRUST, Principals, action_matches,
    agent_tools, check_size, enabled, fill_template, sorted, tool_statement,
};
use crate::catalogue::{Catalogue, Risk, ToolSpec};
use crate::policy::{Decision, Environment, Policy};

/// The agent role's permissions in `env` (none when no tool there calls AWS); the actions
/// granted are added to `granted` (the boundary allows exactly those).
pub(super) fn permissions(
    policy: &Policy,
    catalogue: &Catalogue,
    env: &Environment,
    denied: &[String],
    granted: &mut BTreeSet<String>,
) -> Result<Option<Document>, IamError> {
    let mut statements = Vec::new();
    let mut notes = Vec::new();
    let describes = agent_describes(policy, catalogue, &env.name);
    for (needs, grants) in agent_tools(policy, catalogue, &env.name) {
        let prefix = if needs.name == grants.name {
            ""
        } else {
            "Describe"
        };
        let shared = needs.name != grants.name || describes.contains(grants.name.as_str());
        let (resources, note) = agent_resources(policy, grants, env, shared);
        notes.extend(note);
        let Some((actions, mut st)) = tool_statement(prefix, grants, env) else {
            continue;
        };
        st["Resource"] = json!(resources);
        if let Some(a) = actions
            .iter()
            .find(|a| denied.iter().any(|p| action_matches(p, a)))
        {
            return Err(IamError::DeniedAction {
                tool: needs.name.clone(),
                env: env.name.clone(),
                action: a.clone(),
            });
        }
        granted.extend(actions);
        statements.push(st);
    }
    if statements.is_empty() {
        return Ok(None);
    }
    let file = format!("agent-{}-permissions.json", env.name);
    let json = json!({"Version": "2012-10-17", "Statement": statements});
    check_size(&file, &json, MAX_INLINE_ROLE)?;
    Ok(Some(Document {
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
    }))
}

/// The agent role's trust policy: only the broker, with a SourceIdentity airlock sets.
pub(super) fn trust(env: &Environment, principals: &Principals) -> Result<Document, IamError> {
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
    Ok(Document {
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
    })
}

/// The permission boundary of every agent role: the `granted` read actions, an explicit deny
/// on everything else and, by name, on the `denied` delete-class and escalation actions.
pub(super) fn boundary(
    granted: BTreeSet<String>,
    denied: Vec<String>,
) -> Result<Document, IamError> {
    let allowed: Vec<String> = granted.into_iter().collect();
    let mut statements: Vec<Value> = Vec::new();
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
    Ok(Document {
        file: "agent-boundary.json".into(),
        kind: Kind::Boundary,
        title: "permission boundary for every agent role: read actions only, never delete".into(),
        json,
        notes: Vec::new(),
    })
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
pub(super) fn agent_resources(
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

/// The tools an enabled request tool of `env` looks at its resource with.
pub(super) fn agent_describes<'a>(
    policy: &Policy,
    catalogue: &'a Catalogue,
    env: &str,
) -> BTreeSet<&'a str> {
    catalogue
        .tools()
        .filter(|t| t.risk == Risk::Destructive && enabled(policy, t, env))
        .filter_map(|t| t.describe.as_ref())
        .map(|d| d.tool.as_str())
        .collect()
}
