//! `airlock init`: a starter policy.toml for the environments the user names, the AWS IAM
//! documents its roles need (`airlock::iam`), and the MCP client configuration.
//!
//! Interactive by default (questions on stderr, answers on stdin, every question with a
//! default in brackets); `--non-interactive` takes everything from flags. Nothing is written
//! until the whole policy has been validated like `airlock check` does, and an existing
//! policy.toml is never overwritten without `--force`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock::catalogue::{BackupKind, Catalogue, Risk};
use airlock::iam;
use airlock::policy::Policy;
use airlock::source::SourceFile;
use clap::{Args, ValueEnum};
use regex::Regex;

use super::exit;
use super::iam::{PrincipalArgs, default_principal, generate, write_documents};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    Cursor,
    ClaudeCode,
    Vscode,
    All,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write policy.toml into (created if missing). Keep it outside every
    /// project folder, e.g. ~/.config/airlock: the default, the current folder, gets a warning.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Take every answer from the flags instead of asking.
    #[arg(long)]
    pub non_interactive: bool,
    /// An environment, NAME:ACCOUNT:REGION, or NAME:ACCOUNT:REGION:prod for a production one
    /// (read-only for the agent, destructive tools denied). Repeat for each environment. A name
    /// containing "prod" is production too.
    #[arg(long = "env", value_name = "NAME:ACCOUNT:REGION[:prod]")]
    pub envs: Vec<String>,
    /// The agent role name for each environment; `{env}` is replaced by its name.
    #[arg(long, default_value = "airlock-agent-{env}")]
    pub agent_role_name: String,
    /// The executor role name for each non-production environment; `{env}` is its name.
    #[arg(long, default_value = "airlock-executor-{env}")]
    pub executor_role_name: String,
    /// Copy backups to this region before anything is deleted (non-production environments
    /// whose region differs; the policy then requires the isolated copy).
    #[arg(long, value_name = "REGION")]
    pub backup_region: Option<String>,
    /// The S3 bucket (in the environment's region) that log groups are exported to before they
    /// are deleted, ENV=BUCKET (repeatable). Without one, request_delete_log_group stays off in
    /// that environment.
    #[arg(long = "log-export-bucket", value_name = "ENV=BUCKET")]
    pub log_export_buckets: Vec<String>,
    #[command(flatten)]
    pub principals: PrincipalArgs,
    /// The AWS profile holding the broker's credential (`profile` in each environment);
    /// default: the standard AWS chain (AWS_PROFILE, environment keys, SSO, instance role).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS profile holding the operator's credential, for `airlock executor`
    /// (`executor_profile`); default: the standard AWS chain.
    #[arg(long, value_name = "NAME")]
    pub executor_profile: Option<String>,
    /// The queue file every command uses (`settings.db`), e.g. a shared
    /// /var/lib/airlock/queue.db; default: each user's ~/.local/state/airlock/queue.db.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Send every AWS call to this endpoint (a local AWS such as moto); omit for real AWS.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub endpoint: Option<String>,
    /// Tags that mark resources airlock must never touch, KEY=VALUE (repeatable; default
    /// env=prod).
    #[arg(long = "protect-tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub protect_tags: Vec<String>,
    /// Where to write the IAM documents (default: DIR/iam).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Replace an existing policy.toml.
    #[arg(long)]
    pub force: bool,
    /// The approvers' trust file `airlock serve` checks the policy signature against. When it
    /// is not the default (~/.config/airlock/approvers.toml), the printed client configuration
    /// passes it as `serve --trust PATH`: a client launched from the desktop does not read
    /// shell profiles, so AIRLOCK_TRUST set there never reaches serve.
    #[arg(long, env = "AIRLOCK_TRUST", value_name = "PATH")]
    pub trust: Option<PathBuf>,
    /// Only print the MCP client configuration for DIR/policy.toml (nothing is written).
    #[arg(long, value_name = "CLIENT")]
    pub print_client: Option<Client>,
}

/// One environment as the user described it.
#[derive(Debug, Clone)]
struct EnvAnswer {
    name: String,
    account: String,
    region: String,
    prod: bool,
    agent_role: String,
    executor_role: Option<String>,
    backup_region: Option<String>,
    log_export_bucket: Option<String>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(exit::Failure {
        code: 2,
        message: message.into(),
    })
}

/// `--endpoint`: an http:// or https:// URL with a host, as the policy's `endpoint` needs.
fn endpoint_ok(e: &str) -> bool {
    Regex::new(r"^https?://[A-Za-z0-9.\[\]:_-]+(/\S*)?$").is_ok_and(|re| re.is_match(e))
}

fn parse_endpoint(e: &str) -> Result<String, String> {
    if endpoint_ok(e) {
        Ok(e.to_string())
    } else {
        Err("must be an http:// or https:// URL such as http://127.0.0.1:5000 (omit --endpoint for real AWS)".into())
    }
}

/// `--protect-tag`: KEY=VALUE with a key and a value.
fn tag_ok(t: &str) -> bool {
    t.split_once('=')
        .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty() && !t.contains(char::is_whitespace))
}

fn parse_tag(t: &str) -> Result<String, String> {
    if tag_ok(t) {
        Ok(t.to_string())
    } else {
        Err("must be KEY=VALUE, e.g. env=prod (a resource with that tag is never touched)".into())
    }
}

fn region_ok(r: &str) -> bool {
    Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$").is_ok_and(|re| re.is_match(r))
}

fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn account_ok(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

fn bucket_ok(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn role_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn default_backup(region: &str) -> &'static str {
    if region == "us-west-2" {
        "us-east-1"
    } else {
        "us-west-2"
    }
}

fn looks_prod(name: &str) -> bool {
    name.to_ascii_lowercase().contains("prod")
}

/// Questions on stderr, answers from stdin.
struct Prompter<R> {
    input: R,
}

impl<R: BufRead> Prompter<R> {
    #[allow(clippy::print_stderr)]
    fn ask(&mut self, question: &str, default: &str) -> anyhow::Result<String> {
        if default.is_empty() {
            eprint!("{question}: ");
        } else {
            eprint!("{question} [{default}]: ");
        }
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Err(usage(
                "no answer (end of input); run `airlock init --non-interactive` with flags instead (see --help)",
            ));
        }
        let a = line.trim();
        Ok(if a.is_empty() { default } else { a }.to_string())
    }

    /// Ask until `ok` accepts the answer.
    #[allow(clippy::print_stderr)]
    fn ask_valid(
        &mut self,
        question: &str,
        default: &str,
        ok: impl Fn(&str) -> bool,
        hint: &str,
    ) -> anyhow::Result<String> {
        for _ in 0..5 {
            let a = self.ask(question, default)?;
            if ok(&a) {
                return Ok(a);
            }
            eprintln!("  `{a}` {hint}");
        }
        Err(usage(format!("{question}: no valid answer after 5 tries")))
    }

    fn yes(&mut self, question: &str, default: bool) -> anyhow::Result<bool> {
        let a = self.ask_valid(
            question,
            if default { "y" } else { "n" },
            |a| matches!(a.to_ascii_lowercase().as_str(), "y" | "yes" | "n" | "no"),
            "is not an answer: type y or n",
        )?;
        Ok(a.to_ascii_lowercase().starts_with('y'))
    }
}

fn role_arn(account: &str, template: &str, env: &str) -> String {
    format!(
        "arn:aws:iam::{account}:role/{}",
        template.replace("{env}", env)
    )
}

/// Everything `init` needs, from flags or answers.
struct Plan {
    envs: Vec<EnvAnswer>,
    db: Option<String>,
    profile: Option<String>,
    executor_profile: Option<String>,
    principals: iam::Principals,
    endpoint: Option<String>,
    protect_tags: Vec<String>,
}

fn from_flags(a: &InitArgs) -> anyhow::Result<Plan> {
    if a.envs.is_empty() {
        return Err(usage(
            "name at least one environment: --env NAME:ACCOUNT:REGION (e.g. --env staging:123456789012:us-east-1)",
        ));
    }
    let mut envs = Vec::new();
    for spec in &a.envs {
        let parts: Vec<&str> = spec.split(':').collect();
        let (name, account, region, prod) = match parts.as_slice() {
            [n, acc, r] => (*n, *acc, *r, looks_prod(n)),
            [n, acc, r, "prod"] => (*n, *acc, *r, true),
            _ => {
                return Err(usage(format!(
                    "--env `{spec}` must be NAME:ACCOUNT:REGION or NAME:ACCOUNT:REGION:prod"
                )));
            }
        };
        if !name_ok(name) {
            return Err(usage(format!(
                "--env `{spec}`: the name must be 1-32 letters, digits, - or _"
            )));
        }
        if !account_ok(account) {
            return Err(usage(format!(
                "--env `{spec}`: the account must be the 12-digit AWS account id"
            )));
        }
        if !region_ok(region) {
            return Err(usage(format!(
                "--env `{spec}`: `{region}` is not an AWS region name such as us-east-1"
            )));
        }
        if envs.iter().any(|e: &EnvAnswer| e.name == name) {
            return Err(usage(format!("--env `{name}` is given twice")));
        }
        let backup_region = a.backup_region.clone().filter(|b| !prod && b != region);
        envs.push(EnvAnswer {
            name: name.into(),
            account: account.into(),
            region: region.into(),
            prod,
            agent_role: role_arn(account, &a.agent_role_name, name),
            executor_role: (!prod).then(|| role_arn(account, &a.executor_role_name, name)),
            backup_region,
            log_export_bucket: None,
        });
    }
    for spec in &a.log_export_buckets {
        let Some((env, bucket)) = spec.split_once('=') else {
            return Err(usage(format!(
                "--log-export-bucket `{spec}` must be ENV=BUCKET"
            )));
        };
        if !bucket_ok(bucket) {
            return Err(usage(format!(
                "--log-export-bucket `{spec}`: `{bucket}` is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)"
            )));
        }
        match envs.iter_mut().find(|e| e.name == env) {
            Some(e) if !e.prod => e.log_export_bucket = Some(bucket.into()),
            Some(_) => {
                return Err(usage(format!(
                    "--log-export-bucket `{spec}`: `{env}` is production, where nothing is deleted"
                )));
            }
            None => {
                return Err(usage(format!(
                    "--log-export-bucket `{spec}`: no environment `{env}` (give it with --env)"
                )));
            }
        }
    }
    if let Some(b) = &a.backup_region
        && !region_ok(b)
    {
        return Err(usage(format!(
            "--backup-region `{b}` is not an AWS region name"
        )));
    }
    for pr in [&a.profile, &a.executor_profile].into_iter().flatten() {
        if !role_name_ok(pr) {
            return Err(usage(format!(
                "profile `{pr}` may use letters, digits and +=,.@_-"
            )));
        }
    }
    for t in [&a.agent_role_name, &a.executor_role_name] {
        if !role_name_ok(&t.replace("{env}", "x")) {
            return Err(usage(format!(
                "role name `{t}` may use letters, digits, +=,.@_- and {{env}}"
            )));
        }
    }
    let first = &envs[0];
    Ok(Plan {
        principals: iam::Principals {
            broker: a
                .principals
                .broker_principal
                .clone()
                .unwrap_or_else(|| default_principal("aws", &first.account, "airlock-broker")),
            operator: Some(
                a.principals.operator_principal.clone().unwrap_or_else(|| {
                    default_principal("aws", &first.account, "airlock-operator")
                }),
            ),
            require_mfa: a.principals.require_mfa,
        },
        envs,
        db: a.db.as_ref().map(|d| d.display().to_string()),
        profile: a.profile.clone(),
        executor_profile: a.executor_profile.clone(),
        endpoint: a.endpoint.clone(),
        protect_tags: if a.protect_tags.is_empty() {
            vec!["env=prod".into()]
        } else {
            a.protect_tags.clone()
        },
    })
}

#[allow(clippy::print_stderr)]
fn from_questions<R: BufRead>(a: &InitArgs, p: &mut Prompter<R>) -> anyhow::Result<Plan> {
    eprintln!(
        "airlock init: a starter policy.toml and the AWS IAM documents for it. Press Enter to take the [default].\n"
    );
    let names = p.ask_valid(
        "Environments, separated by spaces",
        "staging prod",
        |a| {
            let ns: Vec<&str> = a.split_whitespace().collect();
            !ns.is_empty()
                && ns.iter().all(|n| name_ok(n))
                && ns.iter().collect::<std::collections::BTreeSet<_>>().len() == ns.len()
        },
        "must be distinct names of letters, digits, - or _",
    )?;
    let mut envs = Vec::new();
    let mut last_account = String::new();
    for name in names.split_whitespace() {
        eprintln!("\n[{name}]");
        let account = p.ask_valid(
            &format!("{name}: AWS account id"),
            &last_account,
            account_ok,
            "is not a 12-digit AWS account id",
        )?;
        last_account = account.clone();
        let region = p.ask_valid(
            &format!("{name}: region"),
            "us-east-1",
            region_ok,
            "is not an AWS region name such as us-east-1",
        )?;
        let prod = p.yes(
            &format!("{name}: is it production (read-only for the agent, no deletes)?"),
            looks_prod(name),
        )?;
        let agent = p.ask_valid(
            &format!("{name}: agent role name"),
            &a.agent_role_name.replace("{env}", name),
            role_name_ok,
            "is not an IAM role name",
        )?;
        let (executor_role, backup_region, log_export_bucket) = if prod {
            (None, None, None)
        } else {
            let exec = p.ask_valid(
                &format!("{name}: executor role name (runs approved deletes)"),
                &a.executor_role_name.replace("{env}", name),
                role_name_ok,
                "is not an IAM role name",
            )?;
            let default = a
                .backup_region
                .clone()
                .unwrap_or_else(|| default_backup(&region).into());
            let region2 = region.clone();
            let backup = p.ask_valid(
                &format!("{name}: copy backups to region (\"none\" for no copy)"),
                &default,
                |b| b == "none" || (region_ok(b) && b != region2),
                "must be another AWS region than the environment's, or none",
            )?;
            let bucket = p.ask_valid(
                &format!(
                    "{name}: S3 bucket in {region} that log groups are exported to before they are deleted (\"none\": log groups are not deleted)"
                ),
                "none",
                |b| b == "none" || bucket_ok(b),
                "is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)",
            )?;
            (
                Some(format!("arn:aws:iam::{account}:role/{exec}")),
                (backup != "none").then_some(backup),
                (bucket != "none").then_some(bucket),
            )
        };
        envs.push(EnvAnswer {
            name: name.into(),
            agent_role: format!("arn:aws:iam::{account}:role/{agent}"),
            account,
            region,
            prod,
            executor_role,
            backup_region,
            log_export_bucket,
        });
    }
    eprintln!();
    let first = envs[0].account.clone();
    let principal_ok = |s: &str| iam::check_principal("principal", s).is_ok();
    let hint = "is not an IAM user or role ARN (arn:aws:iam::ACCOUNT:user/NAME or role/NAME)";
    let broker = p.ask_valid(
        "Broker principal: the IAM user or role `airlock serve` runs as",
        &a.principals
            .broker_principal
            .clone()
            .unwrap_or_else(|| default_principal("aws", &first, "airlock-broker")),
        principal_ok,
        hint,
    )?;
    let any_exec = envs.iter().any(|e| e.executor_role.is_some());
    let (operator, require_mfa) = if any_exec {
        let o = p.ask_valid(
            "Operator principal: the IAM user or role `airlock executor` runs as",
            &a.principals
                .operator_principal
                .clone()
                .unwrap_or_else(|| default_principal("aws", &first, "airlock-operator")),
            principal_ok,
            hint,
        )?;
        let mfa = p.yes(
            "Require MFA to assume the executor roles? (no for an executor run as a service)",
            a.principals.require_mfa,
        )?;
        (Some(o), mfa)
    } else {
        (None, false)
    };
    let profile_ok = |n: &str| {
        n == "none"
            || (!n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)))
    };
    let profile = p.ask_valid(
        "AWS profile with the broker's credential (\"none\" for the standard AWS chain)",
        a.profile.as_deref().unwrap_or("none"),
        profile_ok,
        "is not a profile name",
    )?;
    let executor_profile = if any_exec {
        p.ask_valid(
            "AWS profile with the operator's credential (\"none\" for the standard AWS chain)",
            a.executor_profile.as_deref().unwrap_or("none"),
            profile_ok,
            "is not a profile name",
        )?
    } else {
        "none".into()
    };
    let endpoint = p.ask_valid(
        "Local AWS endpoint, for a local AWS such as moto (\"none\" for real AWS)",
        a.endpoint.as_deref().unwrap_or("none"),
        |e| e == "none" || endpoint_ok(e),
        "must be an http:// or https:// URL, or none",
    )?;
    let tags = p.ask_valid(
        "Tags that mark resources airlock must never touch (KEY=VALUE, separated by spaces)",
        &if a.protect_tags.is_empty() {
            "env=prod".to_string()
        } else {
            a.protect_tags.join(" ")
        },
        |t| t.split_whitespace().all(tag_ok),
        "must be KEY=VALUE pairs",
    )?;
    Ok(Plan {
        envs,
        db: a.db.as_ref().map(|d| d.display().to_string()),
        principals: iam::Principals {
            broker,
            operator,
            require_mfa,
        },
        profile: (profile != "none").then_some(profile),
        executor_profile: (executor_profile != "none").then_some(executor_profile),
        endpoint: (endpoint != "none").then_some(endpoint),
        protect_tags: tags.split_whitespace().map(String::from).collect(),
    })
}

fn q(s: &str) -> String {
    toml::Value::String(s.into()).to_string()
}

fn list(items: &[&str]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The policy text: commented for someone who has never seen airlock.
fn policy_text(plan: &Plan, catalogue: &Catalogue, iam_hint: &str) -> String {
    let mut s = String::new();
    s.push_str(
        "# airlock policy: which tools an AI agent may use, in which environment, on what.\n\
         # Written by `airlock init`. Reference: docs/policy.md. After every change run\n\
         # `airlock check --policy THIS_FILE`; every error is reported as policy.toml:LINE:COL.\n\
         # After adding tools or environments, regenerate the IAM documents the roles need:\n",
    );
    s.push_str(&format!("#   {iam_hint}\n"));
    s.push_str("version = 1\n\n[settings]\n");
    s.push_str("# Lifetime of each per-call credential (15m is the STS minimum, and the safest).\nsession_duration = \"15m\"\n");
    s.push_str("# A destructive request waits this long for a human's approval, then expires.\nrequest_ttl = \"24h\"\n");
    s.push_str("# An approved request must run within this long after its cooldown, or it expires.\nexecution_window = \"24h\"\n");
    if let Some(db) = &plan.db {
        s.push_str("# The queue of destructive requests, shared by `airlock serve` and `airlock executor`.\n");
        s.push_str(&format!("db = {}\n", q(db)));
    }
    for e in &plan.envs {
        s.push_str(&format!("\n[environments.{}]\n", e.name));
        let what = if e.prod {
            " (production): the agent may read; nothing is deleted through airlock"
        } else {
            ": the agent may read; deletes need a human's approval"
        };
        s.push_str(&format!(
            "description = {}\n",
            q(&format!("{}{what}.", e.name))
        ));
        s.push_str(&format!(
            "account = {}\nregion = {}\n",
            q(&e.account),
            q(&e.region)
        ));
        s.push_str("# Every agent call runs under this role, narrowed to the one call by a session policy.\n");
        s.push_str("# The broker's credential (the standard AWS chain, or `profile = \"NAME\"`) may assume it\n# and nothing else.\n");
        s.push_str(&format!("agent_role = {}\n", q(&e.agent_role)));
        if let Some(pr) = &plan.profile {
            s.push_str(&format!("profile = {}\n", q(pr)));
        }
        if let Some(x) = &e.executor_role {
            s.push_str("# `airlock executor` assumes this role (with the operator's credential: the standard AWS\n# chain, or `executor_profile = \"NAME\"`) to run approved requests. The broker cannot.\n");
            s.push_str(&format!("executor_role = {}\n", q(x)));
            if let Some(pr) = &plan.executor_profile {
                s.push_str(&format!("executor_profile = {}\n", q(pr)));
            }
        }
        if let Some(b) = &e.backup_region {
            s.push_str("# Backups are copied to this region (another failure domain) before anything is deleted.\n");
            s.push_str(&format!(
                "backup_region = {}\nrequire_isolated_backup = true\n",
                q(b)
            ));
        }
        if let Some(b) = &e.log_export_bucket {
            s.push_str("# Log groups are exported to this S3 bucket (same region) before they are deleted.\n");
            s.push_str(&format!("log_export_bucket = {}\n", q(b)));
        }
        if let Some(ep) = &plan.endpoint {
            s.push_str("# A local AWS endpoint (e.g. moto); remove this line for real AWS.\n");
            s.push_str(&format!("endpoint = {}\n", q(ep)));
        }
    }
    s.push_str("\n[protected]\n# airlock refuses any call naming these, and marks them in listings.\nids = []\n");
    let tags: Vec<&str> = plan.protect_tags.iter().map(String::as_str).collect();
    s.push_str(&format!("tags = {}\n", list(&tags)));

    s.push_str(
        "\n# Rules. For each call: a matching \"deny\" wins, then \"approve\", then \"allow\"; a call\n\
         # that no rule matches is denied. `resources = [\"/app/staging/*\"]` narrows a rule to\n\
         # matching resource ids. New tools stay off until a rule names them.\n",
    );
    let mut local = Vec::new();
    let mut read = Vec::new();
    let mut destructive = Vec::new();
    // Destructive tools whose backup is an export to the environment's log_export_bucket.
    let mut needs_bucket = Vec::new();
    for t in catalogue.tools() {
        match (t.risk, t.aws().is_some()) {
            (Risk::Destructive, _) if t.backup == Some(BackupKind::LogsExport) => {
                needs_bucket.push(t.name.as_str())
            }
            (Risk::Destructive, _) => destructive.push(t.name.as_str()),
            (Risk::Read, true) => read.push(t.name.as_str()),
            (_, false) => local.push(t.name.as_str()),
            // Write tools that call AWS: off until someone decides.
            (Risk::Write, true) => {}
        }
    }
    let all: Vec<&str> = plan.envs.iter().map(|e| e.name.as_str()).collect();
    let prod: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| e.prod)
        .map(|e| e.name.as_str())
        .collect();
    let nonprod: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| !e.prod)
        .map(|e| e.name.as_str())
        .collect();
    if !local.is_empty() {
        s.push_str(&format!(
            "\n# No AWS call: what the agent may do, and its own requests.\n[[rules]]\ntools = {}\ndecision = \"allow\"\n",
            list(&local)
        ));
    }
    if !read.is_empty() {
        s.push_str(&format!(
            "\n# Read tools, everywhere.\n[[rules]]\ntools = {}\nenvironments = {}\ndecision = \"allow\"\n",
            list(&read),
            list(&all)
        ));
    }
    if !destructive.is_empty() && !nonprod.is_empty() {
        s.push_str(&format!(
            "\n# Destructive tools outside production: one human approval, then a cooldown anyone can\n# cancel in; then `airlock executor` backs the resource up and runs the action.\n[[rules]]\ntools = {}\nenvironments = {}\ndecision = \"approve\"\napprovers = 1\ncooldown = \"10m\"\n",
            list(&destructive),
            list(&nonprod)
        ));
    }
    let with_bucket: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| !e.prod && e.log_export_bucket.is_some())
        .map(|e| e.name.as_str())
        .collect();
    let without: Vec<&str> = nonprod
        .iter()
        .copied()
        .filter(|n| !with_bucket.contains(n))
        .collect();
    if !needs_bucket.is_empty() && !with_bucket.is_empty() {
        s.push_str(&format!(
            "\n# These export the log group to the environment's log_export_bucket first.\n[[rules]]\ntools = {}\nenvironments = {}\ndecision = \"approve\"\napprovers = 1\ncooldown = \"10m\"\n",
            list(&needs_bucket),
            list(&with_bucket)
        ));
    }
    if !needs_bucket.is_empty() && !without.is_empty() {
        s.push_str(&format!(
            "\n# Not enabled in {}: {} (the log group is exported to the environment's\n# `log_export_bucket` before it is deleted: set one, and add an \"approve\" rule to turn it on).\n",
            without.join(", "),
            needs_bucket.join(", ")
        ));
    }
    let all_destructive: Vec<&str> = {
        let mut v: Vec<&str> = destructive.iter().chain(&needs_bucket).copied().collect();
        v.sort();
        v
    };
    if !all_destructive.is_empty() && !prod.is_empty() {
        s.push_str(&format!(
            "\n[[rules]]\ntools = {}\nenvironments = {}\ndecision = \"deny\"\nreason = \"production is changed by the team's own change process, not by agents; ask a person\"\n",
            list(&all_destructive),
            list(&prod)
        ));
    }
    s
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// The exact configuration for each MCP client.
/// `trust` is passed as `serve --trust PATH` when given.
pub fn client_config(client: Client, binary: &Path, policy: &Path, trust: Option<&Path>) -> String {
    let bin = binary.display().to_string();
    let pol = policy.display().to_string();
    let mut argv = vec!["serve".to_string(), "--policy".into(), pol.clone()];
    if let Some(t) = trust {
        argv.push("--trust".into());
        argv.push(t.display().to_string());
    }
    let args = serde_json::json!(argv);
    match client {
        Client::Cursor => format!(
            "# Cursor: ~/.cursor/mcp.json (user-level). Not .cursor/mcp.json in the project: the agent can edit that file and point serve at a policy of its own\n{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "mcpServers": {"airlock": {"command": bin, "args": args}}
            }))
            .unwrap_or_default()
        ),
        Client::ClaudeCode => format!(
            "# Claude Code: run once\nclaude mcp add airlock --scope user -- {} {}\n",
            shell_quote(&bin),
            argv.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Client::Vscode => format!(
            "# VS Code: the user configuration (\"MCP: Open User Configuration\"). Not .vscode/mcp.json in the project: the agent can edit that file and point serve at a policy of its own\n{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "servers": {"airlock": {"type": "stdio", "command": bin, "args": args}}
            }))
            .unwrap_or_default()
        ),
        Client::All => [Client::Cursor, Client::ClaudeCode, Client::Vscode]
            .iter()
            .map(|c| client_config(*c, binary, policy, trust))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[allow(clippy::print_stdout)]
pub fn run(a: InitArgs) -> anyhow::Result<ExitCode> {
    let binary = std::env::current_exe()
        .map(|p| absolute(&p))
        .unwrap_or_else(|_| PathBuf::from("airlock"));
    let policy_path = a.dir.join("policy.toml");
    // The trust file, for serve, when it is not the one serve finds by default.
    let trust = a
        .trust
        .as_deref()
        .map(absolute)
        .filter(|t| *t != absolute(&airlock::approval::trust::default_trust_path()));
    if let Some(c) = a.print_client {
        print!(
            "{}",
            client_config(c, &binary, &absolute(&policy_path), trust.as_deref())
        );
        return Ok(ExitCode::SUCCESS);
    }
    if absolute(&a.dir) == absolute(Path::new(".")) {
        eprintln!(
            "warning: writing policy.toml into the current folder ({}). If an agent works in this folder it can edit the policy (an unsigned policy still serves the read tools); prefer a folder outside every project, e.g. `airlock init ~/.config/airlock` (docs/deployment.md A.3)",
            absolute(&a.dir).display()
        );
    }
    if policy_path.exists() && !a.force {
        return Err(anyhow::Error::new(exit::Failure {
            code: exit::REFUSED,
            message: format!(
                "{} already exists; airlock init does not overwrite it (use --force to replace it, or `airlock iam` to regenerate only the IAM documents)",
                policy_path.display()
            ),
        }));
    }
    let plan = if a.non_interactive {
        from_flags(&a)?
    } else {
        let stdin = std::io::stdin();
        let mut p = Prompter {
            input: stdin.lock(),
        };
        from_questions(&a, &mut p)?
    };
    let out_dir = a.out_dir.clone().unwrap_or_else(|| a.dir.join("iam"));
    let catalogue = Catalogue::builtin().map_err(exit::Failure::config)?;
    let iam_hint = format!(
        "airlock iam --policy {} {} --out-dir {}",
        absolute(&a.dir).join("policy.toml").display(),
        PrincipalArgs::flags(&plan.principals),
        absolute(&a.dir)
            .join(out_dir.strip_prefix(&a.dir).unwrap_or(&out_dir))
            .display()
    );
    let text = policy_text(&plan, &catalogue, &iam_hint);
    // Validate exactly what will be written, as `airlock check` will.
    let policy = Policy::parse(
        &SourceFile::new(&policy_path, text.clone()),
        Some(&catalogue),
    )
    .map_err(|e| {
        exit::Failure::config(format!(
            "{e}\n(this is a bug in airlock init: the answers were valid but the policy is not)"
        ))
    })?;
    let docs = generate(&policy, &catalogue, &plan.principals)?;
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", a.dir.display()))?;
    std::fs::write(&policy_path, &text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", policy_path.display()))?;
    write_documents(&out_dir, &docs)?;

    let policy_abs = absolute(&policy_path);
    let bin = binary.display();
    println!("wrote {}", policy_path.display());
    for d in &docs {
        println!("wrote {}  ({})", out_dir.join(&d.file).display(), d.title);
        for n in &d.notes {
            println!("    note: {n}");
        }
    }
    println!("\nNext steps (docs/deployment.md explains each):");
    println!(
        "\n1. Create the roles and attach the documents (AWS CLI, with an administrator's credential):"
    );
    for c in iam::setup_commands(
        &policy,
        &docs,
        &plan.principals,
        &out_dir.display().to_string(),
    ) {
        println!("   {c}");
    }
    println!(
        "\n2. Check the policy:\n   {bin} check --policy {}",
        policy_abs.display()
    );
    println!(
        "\n3. Create your approver key, and add the lines it prints to the approvers' trust file\n   (~/.config/airlock/approvers.toml):\n   {bin} approver init --name YOUR_NAME"
    );
    println!(
        "\n4. Review and sign the policy (until a trusted approver signs it, destructive requests are refused):\n   {bin} policy sign --policy {}",
        policy_abs.display()
    );
    println!(
        "\n5. Connect your agent (`airlock serve` uses the broker's credential: the policy's `profile`,\n   else the standard AWS chain of the client's environment):\n"
    );
    for line in client_config(Client::All, &binary, &policy_abs, trust.as_deref()).lines() {
        println!("   {line}");
    }
    println!(
        "\n6. From the project folder your agent works in, check the five controls:\n   {bin} doctor --policy {}",
        policy_abs.display()
    );
    println!(
        "\n7. Run the executor with the operator's credential (it runs approved requests):\n   {bin} executor --policy {}",
        policy_abs.display()
    );
    println!("\nAfter adding tools or environments, regenerate the IAM documents:\n   {iam_hint}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(envs: &[&str]) -> Plan {
        let a = InitArgs {
            dir: ".".into(),
            non_interactive: true,
            envs: envs.iter().map(|s| s.to_string()).collect(),
            agent_role_name: "airlock-agent-{env}".into(),
            executor_role_name: "airlock-executor-{env}".into(),
            backup_region: Some("us-west-2".into()),
            log_export_buckets: vec![],
            principals: PrincipalArgs {
                broker_principal: None,
                operator_principal: None,
                require_mfa: false,
            },
            endpoint: None,
            db: Some("/var/lib/airlock/queue.db".into()),
            profile: Some("airlock-broker".into()),
            executor_profile: Some("airlock-operator".into()),
            protect_tags: vec![],
            out_dir: None,
            force: false,
            trust: None,
            print_client: None,
        };
        from_flags(&a).unwrap()
    }

    #[test]
    fn the_starter_policy_is_valid_for_any_mix_of_environments() {
        let c = Catalogue::builtin().unwrap();
        for envs in [
            &[
                "staging:123456789012:us-east-1",
                "prod:123456789012:us-west-2",
            ][..],
            &["dev:123456789012:eu-west-1"][..],
            &["live:210987654321:eu-central-1:prod"][..],
            &["a:123456789012:us-west-2", "b:123456789012:us-east-1"][..],
        ] {
            let p = plan(envs);
            let text = policy_text(&p, &c, "airlock iam");
            let policy = Policy::parse(&SourceFile::new("policy.toml", text.clone()), Some(&c))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(policy.environments.len(), envs.len());
            assert_eq!(
                policy.db.as_deref(),
                Some(Path::new("/var/lib/airlock/queue.db"))
            );
            assert_eq!(
                policy
                    .environments
                    .values()
                    .next()
                    .unwrap()
                    .profile
                    .as_deref(),
                Some("airlock-broker")
            );
            iam::documents(&policy, &c, &p.principals).unwrap();
        }
    }

    #[test]
    fn log_group_deletes_need_an_export_bucket() {
        let c = Catalogue::builtin().unwrap();
        let mut p = plan(&[
            "staging:123456789012:us-east-1",
            "dev:123456789012:us-east-1",
            "prod:123456789012:us-west-2",
        ]);
        p.envs
            .iter_mut()
            .find(|e| e.name == "staging")
            .unwrap()
            .log_export_bucket = Some("staging-log-exports".into());
        let text = policy_text(&p, &c, "airlock iam");
        let policy = Policy::parse(&SourceFile::new("policy.toml", text.clone()), Some(&c))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            policy.environments["staging"].log_export_bucket.as_deref(),
            Some("staging-log-exports")
        );
        let log_tools: Vec<_> = c
            .tools()
            .filter(|t| t.backup == Some(BackupKind::LogsExport))
            .collect();
        assert!(!log_tools.is_empty());
        for t in log_tools {
            assert!(iam::enabled(&policy, t, "staging"), "{}", t.name);
            assert!(!iam::enabled(&policy, t, "dev"), "{}", t.name);
            assert!(!iam::enabled(&policy, t, "prod"), "{}", t.name);
        }
        // Every other destructive tool is on outside production.
        for t in c
            .tools()
            .filter(|t| t.risk == Risk::Destructive && t.backup != Some(BackupKind::LogsExport))
        {
            assert!(iam::enabled(&policy, t, "dev"), "{}", t.name);
            assert!(!iam::enabled(&policy, t, "prod"), "{}", t.name);
        }
        assert!(
            text.contains("# Not enabled in dev: request_delete_log_group"),
            "{text}"
        );
    }

    #[test]
    fn production_is_read_only_and_backups_leave_the_region() {
        let p = plan(&[
            "staging:123456789012:us-east-1",
            "prod:123456789012:us-west-2",
        ]);
        assert!(p.envs[1].prod && p.envs[1].executor_role.is_none());
        assert_eq!(p.envs[0].backup_region.as_deref(), Some("us-west-2"));
        let p = plan(&["west:123456789012:us-west-2"]);
        assert_eq!(p.envs[0].backup_region, None, "same region is no isolation");
    }
}
