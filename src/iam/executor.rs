//! The executor roles: per environment, the actions of the destructive tools the policy sends
//! for approval, the read tool each re-checks its resource with, and their backups' steps
//! ([`crate::backup::grants`]); trusted by the operator only, optionally with MFA.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{
    Document, IamError, Kind, MAX_INLINE_ROLE, MAX_TRUST, Principals, check_size, executor_tools,
    fill_template, statement, tool_statement,
};
use crate::backup::grants as backup_grants;
use crate::catalogue::Catalogue;
use crate::policy::{Environment, Policy};

/// A backup step merged across tools: actions, resources, regions.
type Merged = (BTreeSet<String>, BTreeSet<String>, Vec<String>);

/// The executor role's permissions and trust in `env`; none when it has no executor role, no
/// operator is named, or no destructive tool is enabled there.
pub(super) fn documents(
    policy: &Policy,
    catalogue: &Catalogue,
    env: &Environment,
    principals: &Principals,
) -> Result<Vec<Document>, IamError> {
    let (Some(role), Some(operator)) = (&env.executor_role, &principals.operator) else {
        return Ok(Vec::new());
    };
    let tools = executor_tools(policy, catalogue, &env.name);
    if tools.is_empty() {
        return Ok(Vec::new());
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
    let permissions = Document {
        file,
        kind: Kind::ExecutorPermissions {
            env: env.name.clone(),
        },
        title: format!(
            "permissions of the executor role {role} (the approved actions and their backups in {})",
            env.name
        ),
        json,
        notes: Vec::new(),
    };
    Ok(vec![
        permissions,
        trust(env, role, operator, principals.require_mfa)?,
    ])
}

fn trust(env: &Environment, role: &str, operator: &str, mfa: bool) -> Result<Document, IamError> {
    let mut st = json!({
        "Sid": "OnlyTheOperator",
        "Effect": "Allow",
        "Principal": {"AWS": operator},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
    });
    if mfa {
        st["Condition"] = json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}});
    }
    let file = format!("executor-{}-trust.json", env.name);
    let json = json!({"Version": "2012-10-17", "Statement": [st]});
    check_size(&file, &json, MAX_TRUST)?;
    Ok(Document {
        file,
        kind: Kind::ExecutorTrust {
            env: env.name.clone(),
        },
        title: format!(
            "trust policy of {role}: only the operator{}",
            if mfa { ", with MFA" } else { "" }
        ),
        json,
        notes: Vec::new(),
    })
}
