//! policy.toml, validated: the raw file ([`super::raw`]) becomes a [`Policy`], one section at
//! a time (settings, environments, protected resources, rules). Every problem is collected, so
//! `airlock check` shows them all at once, each as `policy.toml:LINE:COL: what to change`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_spanned::Spanned;
use sha2::{Digest, Sha256};

use super::raw::{RawEnvironment, RawPolicy, RawProtected, RawRule, RawSettings};
use super::{Decision, Environment, Glob, MAX_SESSION, MIN_SESSION, Policy, Rule, names_match};
use crate::catalogue::{Catalogue, Risk};
use crate::config::names::{AccountId, BucketName, EnvName, Region};
use crate::config::source::{SourceError, SourceErrors, SourceFile};
use crate::timefmt::parse_duration;

/// The settings section, validated.
struct Settings {
    session_duration: Duration,
    tools_dir: Option<PathBuf>,
    request_ttl: Duration,
    execution_window: Duration,
    db: Option<PathBuf>,
}

/// Collects every problem of one file.
struct Check<'a> {
    f: &'a SourceFile,
    errs: Vec<SourceError>,
}

impl Check<'_> {
    fn at<T>(&mut self, v: &Spanned<T>, message: impl Into<String>) {
        self.errs.push(self.f.error(Some(v.span()), message));
    }

    /// A duration setting of at least 1s, or `default` (with an error) when it is not one.
    fn duration(&mut self, v: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(s) = v else { return default };
        match parse_duration(s.get_ref()) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                self.at(s, "must be at least 1s");
                default
            }
            Err(e) => {
                self.at(s, e);
                default
            }
        }
    }
}

/// Where `settings.tools_dir` points, relative to the policy file (read before the catalogue
/// is loaded, since the rules are checked against it).
pub fn tools_dir(f: &SourceFile, raw: &RawPolicy) -> Option<PathBuf> {
    let base = f.path.parent().unwrap_or(Path::new("."));
    raw.settings
        .tools_dir
        .as_ref()
        .map(|d| base.join(d.get_ref()))
}

impl Policy {
    /// Validate policy text. Separate from [`Policy::load`] so tests feed strings.
    pub fn parse(f: &SourceFile, catalogue: Option<&Catalogue>) -> Result<Self, SourceErrors> {
        let raw: RawPolicy = f.parse_toml()?;
        Self::from_raw(f, &raw, catalogue)
    }

    /// Validate an already parsed file, checking its rules against `catalogue` when given.
    pub fn from_raw(
        f: &SourceFile,
        raw: &RawPolicy,
        catalogue: Option<&Catalogue>,
    ) -> Result<Self, SourceErrors> {
        let mut c = Check {
            f,
            errs: Vec::new(),
        };
        if *raw.version.get_ref() != 1 {
            c.at(
                &raw.version,
                "this airlock reads policy version 1; set `version = 1`",
            );
        }
        let s = settings(&mut c, raw);
        let environments = environments(&mut c, &raw.environments);
        let (protected_ids, protected_tags) = protected(&mut c, &raw.protected);
        let rules = raw
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| rule(&mut c, i, r, &environments, catalogue))
            .collect();
        if !c.errs.is_empty() {
            return Err(SourceErrors::sorted(c.errs));
        }
        Ok(Policy {
            environments,
            protected_ids,
            protected_tags,
            rules,
            session_duration: s.session_duration,
            tools_dir: s.tools_dir,
            request_ttl: s.request_ttl,
            execution_window: s.execution_window,
            db: s.db,
            hash: hex::encode(Sha256::digest(f.text.as_bytes())),
            path: f.path.clone(),
        })
    }
}

fn settings(c: &mut Check, raw: &RawPolicy) -> Settings {
    let r: &RawSettings = &raw.settings;
    let session_duration = match &r.session_duration {
        None => MIN_SESSION,
        Some(s) => match parse_duration(s.get_ref()) {
            Ok(d) if (MIN_SESSION..=MAX_SESSION).contains(&d) => d,
            Ok(_) => {
                c.at(s, "session_duration must be between 15m (the STS minimum) and 1h; shorter is safer");
                MIN_SESSION
            }
            Err(e) => {
                c.at(s, e);
                MIN_SESSION
            }
        },
    };
    let base = c.f.path.parent().unwrap_or(Path::new("."));
    let day = Duration::from_secs(24 * 3600);
    Settings {
        session_duration,
        tools_dir: tools_dir(c.f, raw),
        request_ttl: c.duration(&r.request_ttl, day),
        execution_window: c.duration(&r.execution_window, day),
        db: r.db.as_ref().map(|d| base.join(d.get_ref())),
    }
}

fn environments(
    c: &mut Check,
    raw: &BTreeMap<Spanned<String>, Spanned<RawEnvironment>>,
) -> BTreeMap<String, Arc<Environment>> {
    if raw.is_empty() {
        c.errs.push(c.f.error(
            None,
            "the policy defines no environment; add an [environments.NAME] table",
        ));
    }
    raw.iter()
        .map(|(name, env)| {
            if let Err(e) = name.get_ref().parse::<EnvName>() {
                c.at(name, e);
            }
            let e = environment(c, name.get_ref(), env);
            (name.get_ref().clone(), Arc::new(e))
        })
        .collect()
}

/// One `[environments.NAME]` table.
fn environment(c: &mut Check, name: &str, env: &Spanned<RawEnvironment>) -> Environment {
    let e = env.get_ref();
    let account = e.account.get_ref();
    if let Err(m) = account.parse::<AccountId>() {
        c.at(&e.account, m);
    }
    let region = e.region.get_ref();
    if let Err(m) = region.parse::<Region>() {
        c.at(&e.region, m);
    }
    if !matches!(e.partition.as_str(), "aws" | "aws-cn" | "aws-us-gov") {
        c.at(
            env,
            format!(
                "partition `{}` must be aws, aws-cn or aws-us-gov",
                e.partition
            ),
        );
    }
    let role = e.agent_role.get_ref();
    let want = format!("arn:{}:iam::{account}:role/", e.partition);
    // A bad account or partition is one mistake: the role ARNs are not judged against it too.
    let knowable = AccountId::is_valid(account)
        && matches!(e.partition.as_str(), "aws" | "aws-cn" | "aws-us-gov");
    let role_ok =
        |s: &str| !knowable || (s.starts_with(&want) && s.len() > want.len() && !s.contains('*'));
    if !role_ok(role) {
        c.at(
            &e.agent_role,
            format!("agent_role must be a role ARN in this environment's account, like \"{want}airlock-agent\""),
        );
    }
    let endpoint = e.endpoint.as_ref().map(|ep| {
        let s = ep.get_ref();
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            c.at(
                ep,
                format!("endpoint `{s}` must be an http:// or https:// URL"),
            );
        }
        s.trim_end_matches('/').to_string()
    });
    let executor_role = e.executor_role.as_ref().map(|r| {
        let s = r.get_ref();
        if !role_ok(s) {
            c.at(r, format!("executor_role must be a role ARN in this environment's account, like \"{want}airlock-executor\""));
        } else if s == role {
            c.at(
                r,
                "executor_role must not be the agent role: the broker must never be able to assume it",
            );
        }
        s.clone()
    });
    let backup_region = e.backup_region.as_ref().map(|r| {
        let s = r.get_ref();
        if let Err(m) = s.parse::<Region>() {
            c.at(r, format!("backup_region: {m}"));
        } else if s == region {
            c.at(r, "backup_region must differ from region: a backup in the same region shares its failure domain");
        }
        s.clone()
    });
    let log_export_bucket = e.log_export_bucket.as_ref().map(|b| {
        if let Err(m) = b.get_ref().parse::<BucketName>() {
            c.at(b, format!("log_export_bucket {m}"));
        }
        b.get_ref().clone()
    });
    if e.require_isolated_backup && backup_region.is_none() {
        c.at(
            env,
            "require_isolated_backup needs backup_region (where backups are copied to)",
        );
    }
    Environment {
        name: name.to_string(),
        account: account.clone(),
        region: region.clone(),
        partition: e.partition.clone(),
        agent_role: role.clone(),
        profile: e.profile.as_ref().map(|p| p.get_ref().clone()),
        endpoint,
        description: e.description.clone(),
        executor_role,
        executor_profile: e.executor_profile.as_ref().map(|p| p.get_ref().clone()),
        backup_region,
        require_isolated_backup: e.require_isolated_backup,
        log_export_bucket,
    }
}

fn protected(c: &mut Check, raw: &RawProtected) -> (Vec<String>, Vec<(String, String)>) {
    let ids = raw.ids.iter().map(|s| s.get_ref().clone()).collect();
    let mut tags = Vec::new();
    for t in &raw.tags {
        match t.get_ref().split_once('=') {
            Some((k, v)) if !k.is_empty() => tags.push((k.to_string(), v.to_string())),
            _ => c.at(
                t,
                format!(
                    "protected tag `{}` must be written \"key=value\", e.g. \"env=prod\"",
                    t.get_ref()
                ),
            ),
        }
    }
    (ids, tags)
}

/// One `[[rules]]` entry (the `i`-th, from 0).
fn rule(
    c: &mut Check,
    i: usize,
    r: &Spanned<RawRule>,
    environments: &BTreeMap<String, Arc<Environment>>,
    catalogue: Option<&Catalogue>,
) -> Rule {
    let (line, _) = c.f.line_col(r.span().start);
    let rr = r.get_ref();
    let decision = match rr.decision.get_ref().as_str() {
        "allow" => Decision::Allow,
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        other => {
            c.at(
                &rr.decision,
                format!("decision `{other}` must be \"allow\", \"deny\" or \"approve\""),
            );
            Decision::Deny
        }
    };
    if rr.tools.is_empty() {
        c.at(r, "tools must name at least one tool (or \"*\")");
    }
    if let Some(cat) = catalogue {
        rule_tools(c, rr, decision, cat);
    }
    let tools: Vec<String> = rr.tools.iter().map(|t| t.get_ref().clone()).collect();
    let envs = rr.environments.as_ref().map(|es| {
        es.iter()
            .map(|e| {
                let en = e.get_ref();
                if en != "*" && !environments.contains_key(en) {
                    let known: Vec<&str> = environments.keys().map(String::as_str).collect();
                    c.at(
                        e,
                        format!("unknown environment `{en}`; defined: {}", known.join(", ")),
                    );
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
                    c.at(g, e);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let approvers = rr.approvers.unwrap_or(1);
    if decision != Decision::Approve && (rr.approvers.is_some() || rr.cooldown.is_some()) {
        c.at(
            r,
            "approvers and cooldown apply only to decision = \"approve\"",
        );
    }
    if !(1..=5).contains(&approvers) {
        c.at(r, "approvers must be between 1 and 5");
    }
    let cooldown = match &rr.cooldown {
        None => Duration::from_secs(15 * 60),
        Some(cd) => parse_duration(cd.get_ref()).unwrap_or_else(|e| {
            c.at(cd, e);
            Duration::ZERO
        }),
    };
    if decision == Decision::Approve
        && let Some(cat) = catalogue
    {
        executors_exist(c, rr, &tools, envs.as_deref(), environments, cat);
    }
    Rule {
        index: i + 1,
        line,
        tools,
        environments: envs,
        resources,
        decision,
        reason: rr.reason.clone(),
        approvers,
        cooldown,
    }
}

/// Every tool a rule names exists, and no destructive tool is `allow`ed.
fn rule_tools(c: &mut Check, rr: &RawRule, decision: Decision, cat: &Catalogue) {
    for t in &rr.tools {
        let tn = t.get_ref();
        if tn == "*" {
            continue;
        }
        match cat.get(tn) {
            None => {
                let known: Vec<&str> = cat.names().collect();
                c.at(
                    t,
                    format!(
                        "unknown tool `{tn}`; the catalogue has: {}",
                        known.join(", ")
                    ),
                );
            }
            Some(x) if decision == Decision::Allow && x.risk == Risk::Destructive => c.at(
                t,
                format!(
                    "`{tn}` is destructive; it can be \"approve\" or \"deny\", never \"allow\""
                ),
            ),
            Some(_) => {}
        }
    }
}

/// An `approve` rule over a destructive tool needs an executor in every environment it covers.
fn executors_exist(
    c: &mut Check,
    rr: &RawRule,
    tools: &[String],
    envs: Option<&[String]>,
    environments: &BTreeMap<String, Arc<Environment>>,
    cat: &Catalogue,
) {
    let destructive = cat
        .tools()
        .any(|x| x.risk == Risk::Destructive && names_match(tools, &x.name));
    let lacking: Vec<&str> = environments
        .values()
        .filter(|e| envs.is_none_or(|es| names_match(es, &e.name)))
        .filter(|e| e.executor_role.is_none())
        .map(|e| e.name.as_str())
        .collect();
    if destructive && !lacking.is_empty() {
        c.at(
            &rr.decision,
            format!(
                "approved requests could never run in {}: set executor_role for that environment",
                lacking.join(", ")
            ),
        );
    }
}
