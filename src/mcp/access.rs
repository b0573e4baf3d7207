//! `describe_access`: what this agent may do where, in words a model can act on. This is the
//! tool an agent should call instead of hunting for credentials when something is refused.

use serde_json::{Value, json};

use crate::catalogue::{Catalogue, Handler};
use crate::policy::{CallFacts, Decision, Policy};

/// Describe access, for one environment or all.
pub fn describe(policy: &Policy, catalogue: &Catalogue, only: Option<&str>) -> Value {
    let mut envs = Vec::new();
    for (name, env) in &policy.environments {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let mut allowed = Vec::new();
        let mut approval = Vec::new();
        let mut denied = Vec::new();
        for tool in catalogue.tools() {
            if matches!(tool.handler, Handler::DescribeAccess) {
                continue;
            }
            // Rules scoped to resources are reported with their globs; the rest decide the
            // tool as a whole.
            let scoped: Vec<_> = policy
                .rules
                .iter()
                .filter(|r| {
                    r.resources.is_some()
                        && r.tools.iter().any(|t| t == "*" || *t == tool.name)
                        && r.environments
                            .as_ref()
                            .is_none_or(|es| es.iter().any(|e| e == "*" || e == name))
                })
                .collect();
            let whole = policy.decide(&CallFacts {
                tool: &tool.name,
                risk: tool.risk,
                environment: name,
                resources: &[],
            });
            let entry = |d: Decision, only_on: Option<Vec<String>>| {
                let mut e = json!({"tool": tool.name, "risk": tool.risk.as_str()});
                if let Some(globs) = only_on {
                    e["only_resources_matching"] = json!(globs);
                }
                if d == Decision::Approve
                    && let Some(r) = &whole.rule
                {
                    e["approvers"] = json!(r.approvers);
                    e["cooldown"] = json!(humantime::format_duration(r.cooldown).to_string());
                }
                e
            };
            if whole.rule.is_some() || scoped.is_empty() {
                match whole.decision {
                    Decision::Allow => allowed.push(entry(Decision::Allow, None)),
                    Decision::Approve => approval.push(entry(Decision::Approve, None)),
                    Decision::Deny if scoped.is_empty() => {
                        denied.push(json!({"tool": tool.name, "why": whole.reason}))
                    }
                    Decision::Deny => {}
                }
            }
            for r in scoped {
                let globs: Vec<String> = r
                    .resources
                    .iter()
                    .flatten()
                    .map(|g| g.text.clone())
                    .collect();
                match r.decision {
                    Decision::Allow => allowed.push(entry(Decision::Allow, Some(globs))),
                    Decision::Approve => approval.push(entry(Decision::Approve, Some(globs))),
                    Decision::Deny => denied.push(json!({"tool": tool.name, "only_resources_matching": globs, "why": r.reason.clone().unwrap_or_else(|| "denied by policy".into())})),
                }
            }
        }
        envs.push(json!({
            "name": name,
            "description": env.description,
            "account": env.account,
            "region": env.region,
            "allowed": allowed,
            "needs_approval": approval,
            "denied": denied,
        }));
    }
    let tags: Vec<String> = policy
        .protected_tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut out = json!({
        "environments": envs,
        "protected": {
            "ids": policy.protected_ids,
            "tags": tags,
            "meaning": "airlock refuses any call that names a protected resource, and marks protected resources in listings; only a human outside airlock can change them",
        },
        "how_to_work": [
            "Use the allowed tools; each call runs under credentials scoped to that call. You never need, and must not look for, a cloud credential.",
            "Tools under needs_approval create a request that a human approves with the airlock CLI; after a cooldown the change runs with a backup first.",
            "If a call is refused, its result says which rule refused it. Ask the person you work with to change policy.toml if the refusal is wrong.",
        ],
    });
    if let Some(o) = only
        && !policy.environments.contains_key(o)
    {
        out["error"] = json!(format!("unknown environment `{o}`"));
    }
    out
}
