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
pub mod raw;
pub mod signature;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalogue::{Catalogue, Risk};
use crate::source::{SourceError, SourceErrors, SourceFile};
use crate::timefmt::parse_duration;

/// STS refuses shorter sessions.
pub const MIN_SESSION: Duration = Duration::from_secs(900);
const MAX_SESSION: Duration = Duration::from_secs(3600);

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

impl Policy {
    /// Read and validate a policy file, checking its rules against the catalogue.
    pub fn load(path: &Path, catalogue: Option<&Catalogue>) -> Result<Self, SourceErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SourceErrors::from(SourceError {
                path: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the policy: {e}"),
            })
        })?;
        Self::parse(&SourceFile::new(path, text), catalogue)
    }

    /// Validate policy text. Separate from [`Policy::load`] so tests feed strings.
    pub fn parse(f: &SourceFile, catalogue: Option<&Catalogue>) -> Result<Self, SourceErrors> {
        let raw: raw::RawPolicy = f.parse_toml()?;
        let mut errs = Vec::new();
        if *raw.version.get_ref() != 1 {
            errs.push(f.error(
                Some(raw.version.span()),
                "this airlock reads policy version 1; set `version = 1`",
            ));
        }
        let session_duration = match &raw.settings.session_duration {
            None => MIN_SESSION,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) if (MIN_SESSION..=MAX_SESSION).contains(&d) => d,
                Ok(_) => {
                    errs.push(f.error(Some(s.span()), "session_duration must be between 15m (the STS minimum) and 1h; shorter is safer"));
                    MIN_SESSION
                }
                Err(e) => {
                    errs.push(f.error(Some(s.span()), e));
                    MIN_SESSION
                }
            },
        };
        let base = f.path.parent().unwrap_or(Path::new("."));
        let tools_dir = raw
            .settings
            .tools_dir
            .as_ref()
            .map(|d| base.join(d.get_ref()));
        let db = raw.settings.db.as_ref().map(|d| base.join(d.get_ref()));
        let mut duration_setting = |v: &Option<serde_spanned::Spanned<String>>,
                                    default: Duration| match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) if d >= Duration::from_secs(1) => d,
                Ok(_) => {
                    errs.push(f.error(Some(s.span()), "must be at least 1s"));
                    default
                }
                Err(e) => {
                    errs.push(f.error(Some(s.span()), e));
                    default
                }
            },
        };
        let day = Duration::from_secs(24 * 3600);
        let request_ttl = duration_setting(&raw.settings.request_ttl, day);
        let execution_window = duration_setting(&raw.settings.execution_window, day);

        let mut environments = BTreeMap::new();
        if raw.environments.is_empty() {
            errs.push(f.error(
                None,
                "the policy defines no environment; add an [environments.NAME] table",
            ));
        }
        for (name, env) in &raw.environments {
            let n = name.get_ref();
            if !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || n.is_empty()
                || n.len() > 32
            {
                errs.push(f.error(
                    Some(name.span()),
                    format!("environment name `{n}` must be 1-32 letters, digits, `-` or `_`"),
                ));
            }
            let e = env.get_ref();
            let account = e.account.get_ref();
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                errs.push(f.error(
                    Some(e.account.span()),
                    format!("account `{account}` must be the 12-digit AWS account id"),
                ));
            }
            let region = e.region.get_ref();
            if !valid_region(region) {
                errs.push(f.error(
                    Some(e.region.span()),
                    format!("region `{region}` is not an AWS region name such as \"us-east-1\""),
                ));
            }
            if !matches!(e.partition.as_str(), "aws" | "aws-cn" | "aws-us-gov") {
                errs.push(f.error(
                    Some(env.span()),
                    format!(
                        "partition `{}` must be aws, aws-cn or aws-us-gov",
                        e.partition
                    ),
                ));
            }
            let role = e.agent_role.get_ref();
            let want = format!("arn:{}:iam::{account}:role/", e.partition);
            if !role.starts_with(&want) || role.len() == want.len() || role.contains('*') {
                errs.push(f.error(
                    Some(e.agent_role.span()),
                    format!("agent_role must be a role ARN in this environment's account, like \"{want}airlock-agent\""),
                ));
            }
            let endpoint = e.endpoint.as_ref().map(|ep| {
                let s = ep.get_ref();
                if !(s.starts_with("http://") || s.starts_with("https://")) {
                    errs.push(f.error(
                        Some(ep.span()),
                        format!("endpoint `{s}` must be an http:// or https:// URL"),
                    ));
                }
                s.trim_end_matches('/').to_string()
            });
            let executor_role = e.executor_role.as_ref().map(|r| {
                let s = r.get_ref();
                if !s.starts_with(&want) || s.len() == want.len() || s.contains('*') {
                    errs.push(f.error(Some(r.span()), format!("executor_role must be a role ARN in this environment's account, like \"{want}airlock-executor\"")));
                } else if s == role {
                    errs.push(f.error(Some(r.span()), "executor_role must not be the agent role: the broker must never be able to assume it"));
                }
                s.clone()
            });
            let backup_region = e.backup_region.as_ref().map(|r| {
                let s = r.get_ref();
                if !valid_region(s) {
                    errs.push(f.error(Some(r.span()), format!("backup_region `{s}` is not an AWS region name")));
                } else if s == region {
                    errs.push(f.error(Some(r.span()), "backup_region must differ from region: a backup in the same region shares its failure domain"));
                }
                s.clone()
            });
            let log_export_bucket = e.log_export_bucket.as_ref().map(|b| {
                let s = b.get_ref();
                let ok = (3..=63).contains(&s.len())
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
                    && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && s.ends_with(|c: char| c.is_ascii_alphanumeric());
                if !ok {
                    errs.push(f.error(Some(b.span()), format!("log_export_bucket `{s}` is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)")));
                }
                s.clone()
            });
            if e.require_isolated_backup && backup_region.is_none() {
                errs.push(f.error(
                    Some(env.span()),
                    "require_isolated_backup needs backup_region (where backups are copied to)",
                ));
            }
            environments.insert(
                n.clone(),
                Arc::new(Environment {
                    name: n.clone(),
                    account: account.clone(),
                    region: region.clone(),
                    partition: e.partition.clone(),
                    agent_role: role.clone(),
                    profile: e.profile.clone(),
                    endpoint,
                    description: e.description.clone(),
                    executor_role,
                    executor_profile: e.executor_profile.clone(),
                    backup_region,
                    require_isolated_backup: e.require_isolated_backup,
                    log_export_bucket,
                }),
            );
        }

        let protected_ids = raw
            .protected
            .ids
            .iter()
            .map(|s| s.get_ref().clone())
            .collect();
        let mut protected_tags = Vec::new();
        for t in &raw.protected.tags {
            match t.get_ref().split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    protected_tags.push((k.to_string(), v.to_string()))
                }
                _ => errs.push(f.error(
                    Some(t.span()),
                    format!(
                        "protected tag `{}` must be written \"key=value\", e.g. \"env=prod\"",
                        t.get_ref()
                    ),
                )),
            }
        }

        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let (line, _) = f.line_col(r.span().start);
            let rr = r.get_ref();
            let decision = match rr.decision.get_ref().as_str() {
                "allow" => Decision::Allow,
                "approve" => Decision::Approve,
                "deny" => Decision::Deny,
                other => {
                    errs.push(f.error(
                        Some(rr.decision.span()),
                        format!("decision `{other}` must be \"allow\", \"deny\" or \"approve\""),
                    ));
                    Decision::Deny
                }
            };
            if rr.tools.is_empty() {
                errs.push(f.error(
                    Some(r.span()),
                    "tools must name at least one tool (or \"*\")",
                ));
            }
            for t in &rr.tools {
                let tn = t.get_ref();
                if let Some(c) = catalogue
                    && tn != "*"
                    && c.get(tn).is_none()
                {
                    let known: Vec<&str> = c.names().collect();
                    errs.push(f.error(
                        Some(t.span()),
                        format!(
                            "unknown tool `{tn}`; the catalogue has: {}",
                            known.join(", ")
                        ),
                    ));
                }
                if decision == Decision::Allow
                    && let Some(c) = catalogue
                {
                    let risky: Vec<&str> = c
                        .tools()
                        .filter(|x| (tn == "*" || x.name == *tn) && x.risk == Risk::Destructive)
                        .map(|x| x.name.as_str())
                        .collect();
                    if !risky.is_empty() && tn != "*" {
                        errs.push(f.error(Some(t.span()), format!("`{tn}` is destructive; it can be \"approve\" or \"deny\", never \"allow\"")));
                    }
                }
            }
            let envs = rr.environments.as_ref().map(|es| {
                es.iter()
                    .map(|e| {
                        let en = e.get_ref();
                        if en != "*" && !environments.contains_key(en) {
                            let known: Vec<&str> =
                                environments.keys().map(String::as_str).collect();
                            errs.push(f.error(
                                Some(e.span()),
                                format!(
                                    "unknown environment `{en}`; defined: {}",
                                    known.join(", ")
                                ),
                            ));
                        }
                        en.clone()
                    })
                    .collect::<Vec<_>>()
            });
            let resources = rr.resources.as_ref().map(|gs| {
                gs.iter()
                    .filter_map(|g| match Glob::new(g.get_ref()) {
                        Ok(g) => Some(g),
                        Err(e) => {
                            errs.push(f.error(Some(g.span()), e));
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let approvers = rr.approvers.unwrap_or(1);
            if decision != Decision::Approve && (rr.approvers.is_some() || rr.cooldown.is_some()) {
                errs.push(f.error(
                    Some(r.span()),
                    "approvers and cooldown apply only to decision = \"approve\"",
                ));
            }
            if !(1..=5).contains(&approvers) {
                errs.push(f.error(Some(r.span()), "approvers must be between 1 and 5"));
            }
            let cooldown = match &rr.cooldown {
                None => Duration::from_secs(15 * 60),
                Some(c) => parse_duration(c.get_ref()).unwrap_or_else(|e| {
                    errs.push(f.error(Some(c.span()), e));
                    Duration::ZERO
                }),
            };
            if decision == Decision::Approve
                && let Some(c) = catalogue
            {
                let destructive = c.tools().any(|x| {
                    x.risk == Risk::Destructive
                        && rr
                            .tools
                            .iter()
                            .any(|t| t.get_ref() == "*" || *t.get_ref() == x.name)
                });
                let lacking: Vec<&str> = environments
                    .values()
                    .filter(|e| {
                        envs.as_ref()
                            .is_none_or(|es| es.iter().any(|n| n == "*" || *n == e.name))
                    })
                    .filter(|e| e.executor_role.is_none())
                    .map(|e| e.name.as_str())
                    .collect();
                if destructive && !lacking.is_empty() {
                    errs.push(f.error(
                        Some(rr.decision.span()),
                        format!("approved requests could never run in {}: set executor_role for that environment", lacking.join(", ")),
                    ));
                }
            }
            rules.push(Rule {
                index: i + 1,
                line,
                tools: rr.tools.iter().map(|t| t.get_ref().clone()).collect(),
                environments: envs,
                resources,
                decision,
                reason: rr.reason.clone(),
                approvers,
                cooldown,
            });
        }

        if !errs.is_empty() {
            return Err(SourceErrors(errs));
        }
        Ok(Policy {
            environments,
            protected_ids,
            protected_tags,
            rules,
            session_duration,
            tools_dir,
            request_ttl,
            execution_window,
            db,
            hash: hex::encode(Sha256::digest(f.text.as_bytes())),
            path: f.path.clone(),
        })
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

fn valid_region(r: &str) -> bool {
    static RE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$").expect("region regex")
    });
    RE.is_match(r)
}

#[cfg(test)]
mod tests;
