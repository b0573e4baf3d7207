//! The policy: which environments exist, what is protected, and which rule decides each call.
//!
//! `policy.toml` is parsed strictly ([`raw`]) and validated into a [`Policy`]; every error reads
//! `policy.toml:LINE:COL: what is wrong and what to change`. [`Policy::decide`] is pure: it
//! takes a validated call and returns the decision with the rule that made it, before any
//! credential exists.
//!
//! Decision order, as in IAM: a matching `deny` wins, then `approve`, then `allow`; a call no
//! rule matches is denied. Protected resources are refused before rules are read.

pub mod access;
pub mod load;
pub mod raw;
pub mod signature;
mod validate;

pub use validate::tools_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use crate::catalogue::{Catalogue, Risk};
use crate::config::source::SourceErrors;

/// STS refuses shorter sessions.
pub const MIN_SESSION: Duration = Duration::from_secs(900);
pub(crate) const MAX_SESSION: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct Policy {
    pub environments: BTreeMap<String, Arc<Environment>>,
    pub protected_ids: Vec<String>,
    pub protected_tags: Vec<(String, String)>,
    pub rules: Vec<Rule>,
    pub session_duration: Duration,
    pub tools_dir: Option<PathBuf>,
    pub request_ttl: Duration,
    pub execution_window: Duration,
    pub db: Option<PathBuf>,
    /// Hex SHA-256 of the policy file's bytes.
    pub hash: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Environment {
    pub name: String,
    pub account: String,
    pub region: String,
    pub partition: String,
    pub agent_role: String,
    pub profile: Option<String>,
    pub endpoint: Option<String>,
    pub description: Option<String>,
    pub executor_role: Option<String>,
    pub executor_profile: Option<String>,
    pub backup_region: Option<String>,
    pub require_isolated_backup: bool,
    /// Where log groups are exported before they are deleted.
    pub log_export_bucket: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Approve,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based position in the file, and where it is.
    pub index: usize,
    pub line: usize,
    pub tools: Vec<String>,
    pub environments: Option<Vec<String>>,
    pub resources: Option<Vec<Glob>>,
    pub decision: Decision,
    pub reason: Option<String>,
    pub approvers: u32,
    pub cooldown: Duration,
}

impl Rule {
    pub fn label(&self) -> String {
        format!("rule #{} (policy.toml line {})", self.index, self.line)
    }

    /// Does this rule speak about `tool` in environment `env` (whatever its resources)?
    pub fn covers(&self, tool: &str, env: &str) -> bool {
        names_match(&self.tools, tool)
            && self
                .environments
                .as_ref()
                .is_none_or(|es| names_match(es, env))
    }

    fn matches(&self, tool: &str, env: &str, resources: &[String]) -> bool {
        // A rule scoped to resources matches only calls whose every resource fits it.
        let res_ok = match &self.resources {
            None => true,
            Some(globs) => {
                !resources.is_empty()
                    && resources
                        .iter()
                        .all(|r| globs.iter().any(|g| g.is_match(r)))
            }
        };
        self.covers(tool, env) && res_ok
    }
}

/// The one rule for the name lists of a policy (a rule's `tools` and `environments`): a name
/// matches the list when the list holds it or holds `"*"`.
pub fn names_match(list: &[String], name: &str) -> bool {
    list.iter().any(|n| n == "*" || n == name)
}

/// A `*` glob over a resource id.
#[derive(Debug, Clone)]
pub struct Glob {
    pub text: String,
    re: Regex,
}

impl Glob {
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty resource glob matches nothing; remove it".into());
        }
        let mut re = String::from("^");
        for (i, part) in text.split('*').enumerate() {
            if i > 0 {
                re.push_str(".*");
            }
            re.push_str(&regex::escape(part));
        }
        re.push('$');
        Regex::new(&re)
            .map(|re| Glob {
                text: text.into(),
                re,
            })
            .map_err(|e| format!("bad glob `{text}`: {e}"))
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// What the policy says about one call.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// `rule #N (policy.toml line L)`, `protected resources`, or `no rule matched`.
    pub matched: String,
    /// Why, in words the agent can act on.
    pub reason: String,
    #[serde(skip)]
    pub rule: Option<Rule>,
}

/// The facts about a call that the policy decides on.
#[derive(Debug, Clone)]
pub struct CallFacts<'a> {
    pub tool: &'a str,
    pub risk: Risk,
    pub environment: &'a str,
    /// The resource ids the call names (from the tool's `resource = true` arguments).
    pub resources: &'a [String],
}

impl Environment {
    /// A staging environment in account 123456789012 and `region` (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(region: &str) -> Self {
        Environment {
            name: "staging".into(),
            account: "123456789012".into(),
            region: region.into(),
            partition: "aws".into(),
            agent_role: "arn:aws:iam::123456789012:role/airlock-agent-staging".into(),
            ..Default::default()
        }
    }
}

impl Policy {
    /// Read and validate a policy file, checking its rules against the catalogue.
    pub fn load(path: &Path, catalogue: Option<&Catalogue>) -> Result<Self, SourceErrors> {
        let (file, raw) = load::read(path)?;
        Self::from_raw(&file, &raw, catalogue)
    }

    pub fn environment_names(&self) -> Vec<&str> {
        self.environments.keys().map(String::as_str).collect()
    }

    /// Is a resource protected, by id or by one of its tags?
    pub fn is_protected(&self, id: &str, tags: &BTreeMap<String, String>) -> bool {
        self.protected_ids.iter().any(|p| p == id)
            || self
                .protected_tags
                .iter()
                .any(|(k, v)| tags.get(k).is_some_and(|x| x == v))
    }

    /// Decide a call. Pure: no I/O, no credentials.
    pub fn decide(&self, call: &CallFacts<'_>) -> Verdict {
        if let Some(p) = call
            .resources
            .iter()
            .find(|r| self.protected_ids.iter().any(|x| x == *r))
        {
            return Verdict {
                decision: Decision::Deny,
                matched: "protected resources".into(),
                reason: format!(
                    "`{p}` is a protected resource (listed under [protected] in policy.toml); airlock will not act on it for an agent. If it really must change, a human has to do it outside airlock."
                ),
                rule: None,
            };
        }
        let mut best: Option<&Rule> = None;
        for r in &self.rules {
            if r.matches(call.tool, call.environment, call.resources)
                && best.is_none_or(|b| r.decision > b.decision)
            {
                best = Some(r);
            }
        }
        match best {
            None => Verdict {
                decision: Decision::Deny,
                matched: "no rule matched".into(),
                reason: format!(
                    "no rule in policy.toml allows `{}` in environment `{}`{}; call describe_access to see what you may do",
                    call.tool,
                    call.environment,
                    if call.resources.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", call.resources.join(", "))
                    }
                ),
                rule: None,
            },
            Some(r) => {
                let reason = match (r.decision, &r.reason) {
                    (_, Some(text)) => text.clone(),
                    (Decision::Allow, None) => "allowed".into(),
                    (Decision::Approve, None) => format!(
                        "needs approval by {} human approver(s), then a {} cooldown",
                        r.approvers,
                        humantime::format_duration(r.cooldown)
                    ),
                    (Decision::Deny, None) => format!(
                        "`{}` is denied in environment `{}` by policy",
                        call.tool, call.environment
                    ),
                };
                Verdict {
                    decision: r.decision,
                    matched: r.label(),
                    reason,
                    rule: Some(r.clone()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
