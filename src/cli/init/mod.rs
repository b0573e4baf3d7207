//! `airlock init`: a starter policy.toml for the environments the user names, the AWS IAM
//! documents its roles need (`airlock::iam`), and the MCP client configuration.
//!
//! Interactive by default (questions on stderr, answers on stdin, every question with a
//! default in brackets); `--non-interactive` takes everything from flags. Nothing is written
//! until the whole policy has been validated like `airlock check` does, and an existing
//! policy.toml is never overwritten without `--force`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock::catalogue::Catalogue;
use airlock::config::source::SourceFile;
use airlock::iam;
use airlock::policy::Policy;
use clap::{Args, ValueEnum};

mod client;
mod flags;
mod questions;
mod text;

pub use client::client_config;
use flags::from_flags;
use questions::{Prompter, from_questions};
use regex::Regex;
use text::policy_text;

use airlock::config::names::Region;

use super::exit;
use super::iam::{PrincipalArgs, generate, write_documents};

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
    pub backup_region: Option<Region>,
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
    accept(
        e,
        endpoint_ok,
        "must be an http:// or https:// URL such as http://127.0.0.1:5000 (omit --endpoint for real AWS)",
    )
}

/// `v` when `ok` accepts it, else `hint` (what clap shows for a bad flag value).
fn accept(v: &str, ok: fn(&str) -> bool, hint: &str) -> Result<String, String> {
    if ok(v) {
        Ok(v.to_string())
    } else {
        Err(hint.into())
    }
}

/// `--protect-tag`: KEY=VALUE with a key and a value.
fn tag_ok(t: &str) -> bool {
    t.split_once('=')
        .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty() && !t.contains(char::is_whitespace))
}

fn parse_tag(t: &str) -> Result<String, String> {
    accept(
        t,
        tag_ok,
        "must be KEY=VALUE, e.g. env=prod (a resource with that tag is never touched)",
    )
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

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
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
        // The configuration alone on stdout (so `> ~/.cursor/mcp.json` writes a valid file);
        // what it is and where it goes on stderr.
        if !policy_path.exists() {
            return Err(anyhow::Error::new(exit::Failure {
                code: exit::CONFIG,
                message: format!(
                    "{} does not exist: there is nothing to connect a client to yet. Write it first with `airlock init {}`, or name the folder that holds it",
                    policy_path.display(),
                    a.dir.display()
                ),
            }));
        }
        for cc in client_config(c, &binary, &absolute(&policy_path), trust.as_deref()) {
            eprintln!("# {}", cc.note);
            print!("{}", cc.body);
        }
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

    next_steps(
        &a,
        &binary,
        &policy,
        &docs,
        &plan,
        &out_dir,
        trust.as_deref(),
        &iam_hint,
    );
    Ok(ExitCode::SUCCESS)
}

/// What `init` wrote, and what to do next.
#[allow(clippy::print_stdout, clippy::too_many_arguments)]
fn next_steps(
    a: &InitArgs,
    binary: &Path,
    policy: &Policy,
    docs: &[iam::Document],
    plan: &Plan,
    out_dir: &Path,
    trust: Option<&Path>,
    iam_hint: &str,
) {
    let policy_path = a.dir.join("policy.toml");
    let policy_abs = absolute(&policy_path);
    let bin = binary.display();
    println!("wrote {}", policy_path.display());
    for d in docs {
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
        policy,
        docs,
        &plan.principals,
        &out_dir.display().to_string(),
    ) {
        println!("   {c}");
    }
    let mut profiles: Vec<&str> = [&plan.profile, &plan.executor_profile]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    profiles.dedup();
    let profile_note = match profiles.as_slice() {
        [] => String::new(),
        names => format!(
            "\n   (it also checks that your AWS config files define {}: create {} first, e.g. `aws configure --profile {}`)",
            names
                .iter()
                .map(|n| format!("profile `{n}`"))
                .collect::<Vec<_>>()
                .join(" and "),
            if names.len() == 1 { "it" } else { "them" },
            names[0]
        ),
    };
    println!(
        "\n2. Check the policy:\n   {bin} check --policy {}{profile_note}",
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
    for cc in client_config(Client::All, binary, &policy_abs, trust) {
        println!("   # {}", cc.note);
        for line in cc.body.lines() {
            println!("   {line}");
        }
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
}

#[cfg(test)]
mod tests;
