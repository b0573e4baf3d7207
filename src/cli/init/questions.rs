//! `airlock init`'s questions: on stderr, answers from stdin, every question with a default.

use std::io::{BufRead, Write};

use airlock::config::names::{AccountId, BucketName, EnvName, Region};
use airlock::iam;

use crate::cli::iam::default_principal;

use super::{
    EnvAnswer, InitArgs, Plan, default_backup, endpoint_ok, looks_prod, role_name_ok, tag_ok, usage,
};

/// Questions on stderr, answers from stdin.
pub(super) struct Prompter<R> {
    pub input: R,
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

    /// An IAM role name; the default is `template` with `{env}` replaced by `env`.
    fn ask_role(&mut self, question: &str, template: &str, env: &str) -> anyhow::Result<String> {
        let default = template.replace("{env}", env);
        self.ask_valid(question, &default, role_name_ok, "is not an IAM role name")
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

pub(super) fn from_questions<R: BufRead>(
    a: &InitArgs,
    p: &mut Prompter<R>,
) -> anyhow::Result<Plan> {
    eprintln!(
        "airlock init: a starter policy.toml and the AWS IAM documents for it. Press Enter to take the [default].\n"
    );
    let names = p.ask_valid(
        "Environments, separated by spaces",
        "staging prod",
        |a| {
            let ns: Vec<&str> = a.split_whitespace().collect();
            !ns.is_empty()
                && ns.iter().all(|n| EnvName::is_valid(n))
                && ns.iter().collect::<std::collections::BTreeSet<_>>().len() == ns.len()
        },
        "must be distinct names of letters, digits, - or _",
    )?;
    let mut envs = Vec::new();
    let mut last_account = String::new();
    for name in names.split_whitespace() {
        eprintln!("\n[{name}]");
        let e = ask_environment(a, p, name, &last_account)?;
        last_account = e.account.clone();
        envs.push(e);
    }
    eprintln!();
    let (broker, operator, require_mfa) = ask_principals(a, p, &envs)?;
    let any_exec = operator.is_some();
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

/// The questions about one environment.
#[allow(clippy::print_stderr)]
fn ask_environment<R: BufRead>(
    a: &InitArgs,
    p: &mut Prompter<R>,
    name: &str,
    last_account: &str,
) -> anyhow::Result<EnvAnswer> {
    let account = p.ask_valid(
        &format!("{name}: AWS account id"),
        last_account,
        AccountId::is_valid,
        "is not a 12-digit AWS account id",
    )?;
    let region = p.ask_valid(
        &format!("{name}: region"),
        "us-east-1",
        Region::is_valid,
        "is not an AWS region name such as us-east-1",
    )?;
    let prod = p.yes(
        &format!("{name}: is it production (read-only for the agent, no deletes)?"),
        looks_prod(name),
    )?;
    let agent = p.ask_role(
        &format!("{name}: agent role name"),
        &a.agent_role_name,
        name,
    )?;
    let (executor_role, backup_region, log_export_bucket) = if prod {
        (None, None, None)
    } else {
        let exec = p.ask_role(
            &format!("{name}: executor role name (runs approved deletes)"),
            &a.executor_role_name,
            name,
        )?;
        let default = a
            .backup_region
            .as_ref()
            .map_or_else(|| default_backup(&region).to_string(), Region::to_string);
        let region2 = region.clone();
        let backup = p.ask_valid(
            &format!("{name}: copy backups to region (\"none\" for no copy)"),
            &default,
            |b| b == "none" || (Region::is_valid(b) && b != region2),
            "must be another AWS region than the environment's, or none",
        )?;
        let bucket = p.ask_valid(
                &format!(
                    "{name}: S3 bucket in {region} that log groups are exported to before they are deleted (\"none\": log groups are not deleted)"
                ),
                "none",
                |b| b == "none" || BucketName::is_valid(b),
                "is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)",
            )?;
        (
            Some(format!("arn:aws:iam::{account}:role/{exec}")),
            (backup != "none").then_some(backup),
            (bucket != "none").then_some(bucket),
        )
    };
    Ok(EnvAnswer {
        name: name.into(),
        agent_role: format!("arn:aws:iam::{account}:role/{agent}"),
        account,
        region,
        prod,
        executor_role,
        backup_region,
        log_export_bucket,
    })
}

/// Who the broker and the operator are.
fn ask_principals<R: BufRead>(
    a: &InitArgs,
    p: &mut Prompter<R>,
    envs: &[EnvAnswer],
) -> anyhow::Result<(String, Option<String>, bool)> {
    let first = envs[0].account.clone();
    let principal_ok = |s: &str| iam::check_principal("principal", s).is_ok();
    let hint = "is not an IAM user or role ARN (arn:aws:iam::ACCOUNT:user/NAME or role/NAME)";
    let mut ask = |question: &str, given: &Option<String>, default: &str| {
        let default = given
            .clone()
            .unwrap_or_else(|| default_principal("aws", &first, default));
        p.ask_valid(question, &default, principal_ok, hint)
    };
    let broker = ask(
        "Broker principal: the IAM user or role `airlock serve` runs as",
        &a.principals.broker_principal,
        "airlock-broker",
    )?;
    let any_exec = envs.iter().any(|e| e.executor_role.is_some());
    let (operator, require_mfa) = if any_exec {
        let o = ask(
            "Operator principal: the IAM user or role `airlock executor` runs as",
            &a.principals.operator_principal,
            "airlock-operator",
        )?;
        let mfa = p.yes(
            "Require MFA to assume the executor roles? (no for an executor run as a service)",
            a.principals.require_mfa,
        )?;
        (Some(o), mfa)
    } else {
        (None, false)
    };
    Ok((broker, operator, require_mfa))
}
