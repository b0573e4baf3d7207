//! `describe_access`: what this agent may do where, in words a model can act on. This is the
//! tool an agent should call instead of hunting for credentials when something is refused.

use serde::Serialize;

use super::signature::Status;
use super::{CallFacts, Decision, Policy};
use crate::catalogue::{Catalogue, Handler, ToolSpec};

/// What the policy lets an agent do, per environment.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub environments: Vec<EnvironmentAccess>,
    pub protected: Protected,
    pub how_to_work: [&'static str; 3],
    /// Whether destructive requests are accepted now (set by `airlock serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_signature: Option<SignatureSummary>,
    /// The environment asked about does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentAccess {
    pub name: String,
    pub description: Option<String>,
    pub account: String,
    pub region: String,
    pub allowed: Vec<ToolAccess>,
    pub needs_approval: Vec<ToolAccess>,
    pub denied: Vec<DeniedTool>,
}

/// A tool the agent may call (directly, or as a request for approval).
#[derive(Debug, Clone, Serialize)]
pub struct ToolAccess {
    pub tool: String,
    pub risk: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_resources_matching: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeniedTool {
    pub tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_resources_matching: Option<Vec<String>>,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Protected {
    pub ids: Vec<String>,
    pub tags: Vec<String>,
    pub meaning: &'static str,
}

/// Whether the policy is signed, as the agent is told.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SignatureSummary {
    Signed {
        signed: bool,
        signed_by: Vec<String>,
        manifest_hash: String,
    },
    Unsigned {
        signed: bool,
        problem: Option<String>,
        meaning: &'static str,
    },
}

impl SignatureSummary {
    pub fn of(st: &Status) -> Self {
        if st.signed {
            SignatureSummary::Signed {
                signed: true,
                signed_by: st.signed_by.iter().map(|s| s.name.clone()).collect(),
                manifest_hash: st.manifest_hash.clone(),
            }
        } else {
            SignatureSummary::Unsigned {
                signed: false,
                problem: st.problem.clone(),
                meaning: "read tools work; needs_approval tools refuse new requests until a human reviews the policy and runs `airlock policy sign`",
            }
        }
    }
}

const HOW_TO_WORK: [&str; 3] = [
    "Use the allowed tools; each call runs under credentials scoped to that call. You never need, and must not look for, a cloud credential.",
    "Tools under needs_approval create a request that a human approves with the airlock CLI; after a cooldown the change runs with a backup first.",
    "If a call is refused, its result says which rule refused it. Ask the person you work with to change policy.toml if the refusal is wrong.",
];

/// Describe access, for one environment or all.
pub fn describe(policy: &Policy, catalogue: &Catalogue, only: Option<&str>) -> Access {
    let environments = policy
        .environments
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
        .map(|(name, env)| {
            let mut e = EnvironmentAccess {
                name: name.clone(),
                description: env.description.clone(),
                account: env.account.clone(),
                region: env.region.clone(),
                allowed: Vec::new(),
                needs_approval: Vec::new(),
                denied: Vec::new(),
            };
            for tool in catalogue.tools() {
                if !matches!(tool.handler, Handler::DescribeAccess) {
                    describe_tool(policy, tool, name, &mut e);
                }
            }
            e
        })
        .collect();
    Access {
        environments,
        protected: Protected {
            ids: policy.protected_ids.clone(),
            tags: policy
                .protected_tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            meaning: "airlock refuses any call that names a protected resource, and marks protected resources in listings; only a human outside airlock can change them",
        },
        how_to_work: HOW_TO_WORK,
        policy_signature: None,
        error: only
            .filter(|o| !policy.environments.contains_key(*o))
            .map(|o| format!("unknown environment `{o}`")),
    }
}

/// Where `tool` stands in environment `env`: rules scoped to resources are reported with their
/// globs; the rest decide the tool as a whole.
fn describe_tool(policy: &Policy, tool: &ToolSpec, env: &str, out: &mut EnvironmentAccess) {
    let scoped: Vec<_> = policy
        .rules
        .iter()
        .filter(|r| r.resources.is_some() && r.covers(&tool.name, env))
        .collect();
    let whole = policy.decide(&CallFacts {
        tool: &tool.name,
        risk: tool.risk,
        environment: env,
        resources: &[],
    });
    let entry = |d: Decision, only_on: Option<Vec<String>>| {
        let rule = whole.rule.as_ref().filter(|_| d == Decision::Approve);
        ToolAccess {
            tool: tool.name.clone(),
            risk: tool.risk.as_str(),
            only_resources_matching: only_on,
            approvers: rule.map(|r| r.approvers),
            cooldown: rule.map(|r| humantime::format_duration(r.cooldown).to_string()),
        }
    };
    if whole.rule.is_some() || scoped.is_empty() {
        match whole.decision {
            Decision::Allow => out.allowed.push(entry(Decision::Allow, None)),
            Decision::Approve => out.needs_approval.push(entry(Decision::Approve, None)),
            Decision::Deny if scoped.is_empty() => out.denied.push(DeniedTool {
                tool: tool.name.clone(),
                only_resources_matching: None,
                why: whole.reason.clone(),
            }),
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
            Decision::Allow => out.allowed.push(entry(Decision::Allow, Some(globs))),
            Decision::Approve => out
                .needs_approval
                .push(entry(Decision::Approve, Some(globs))),
            Decision::Deny => out.denied.push(DeniedTool {
                tool: tool.name.clone(),
                only_resources_matching: Some(globs),
                why: r
                    .reason
                    .clone()
                    .unwrap_or_else(|| "denied by policy".into()),
            }),
        }
    }
}
