//! The command line: one file per subcommand group. Each command returns an exit code; errors
//! carry their code through [`exit::Failure`].

pub mod approve;
pub mod check;
pub mod doctor;
pub mod executor;
pub mod exit;
pub mod explain;
pub mod iam;
pub mod init;
pub mod policy;
pub mod requests;
pub mod serve;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock::config::source::SourceErrors;
use airlock::policy::Policy;
use clap::{Args, Parser, Subcommand};

/// airlock: typed, per-call scoped cloud tools for AI coding agents, over MCP.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdin/stdout (what an MCP client such as Cursor or Claude Code starts).
    Serve(serve::ServeArgs),
    /// Validate policy.toml and the tool catalogue; print every problem as file:line:col.
    Check(check::CheckArgs),
    /// Show what airlock would decide for a call, and the exact session policy it would send,
    /// without calling AWS.
    Explain(explain::ExplainArgs),
    /// List and inspect queued requests.
    #[command(subcommand)]
    Requests(requests::RequestsCommand),
    /// Approve a request: shows it, asks you to type the resource id and your passphrase at the
    /// terminal, and signs the exact call.
    Approve(approve::ApproveArgs),
    /// Deny a pending request.
    Deny(requests::DenyArgs),
    /// Cancel a pending or approved request (anyone may, until it starts executing).
    Cancel(requests::CancelArgs),
    /// Approver keys.
    #[command(subcommand)]
    Approver(approve::ApproverCommand),
    /// Run approved requests whose cooldown has ended (run by the operator, with the executor
    /// credential).
    Executor(executor::ExecutorArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(requests::AuditCommand),
    /// The tool catalogue: list, check tool files, print the tool-file schema or the catalogue
    /// page.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Start a deployment: write a commented policy.toml for your environments, the AWS IAM
    /// documents its roles need, and the MCP client configuration.
    Init(Box<init::InitArgs>),
    /// Write the AWS IAM documents (broker, agent roles and their boundary, executor roles)
    /// for an existing policy: exactly the actions its enabled tools use.
    Iam(iam::IamArgs),
    /// Check the five controls (credentials in the workspace, the broker, the executor,
    /// backups, policy integrity): each line pass, warn or fail, with the fix.
    Doctor(doctor::DoctorArgs),
    /// Sign policy.toml (and the tool files it enables), or show whether it is signed.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Where the queue is.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// The queue file (default: the policy's `settings.db`, else
    /// $XDG_STATE_HOME/airlock/queue.db or ~/.local/state/airlock/queue.db).
    #[arg(long, env = "AIRLOCK_DB")]
    pub db: Option<PathBuf>,
}

impl QueueArgs {
    pub fn path(&self, policy: Option<&Policy>) -> PathBuf {
        self.db
            .clone()
            .or_else(|| policy.and_then(|p| p.db.clone()))
            .unwrap_or_else(airlock::queue::default_db_path)
    }
}

/// Who runs this command, for the audit log: the OS user's name (from the user database, not
/// `$USER`, which a shell can unset or set to anything), else the numeric uid.
pub fn cli_actor() -> String {
    format!("cli:{}", os_user())
}

/// The name of the OS user this process runs as.
pub fn os_user() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes into the buffers given and returns a
    // pointer into them (or null), read before the buffers go out of scope.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out);
        if rc == 0 && !out.is_null() && !pwd.pw_name.is_null() {
            let name = std::ffi::CStr::from_ptr(pwd.pw_name).to_string_lossy();
            if !name.is_empty() {
                return name.into_owned();
            }
        }
        format!("uid-{uid}")
    }
}

/// A small runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Where the configuration is.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The policy file.
    #[arg(long, env = "AIRLOCK_POLICY", default_value = "policy.toml")]
    pub policy: PathBuf,
    /// A tools folder that replaces the built-in catalogue (default: the policy's
    /// `settings.tools_dir`, else the built-in tools).
    #[arg(long, env = "AIRLOCK_TOOLS")]
    pub tools: Option<PathBuf>,
}

pub use airlock::policy::load::Config;

impl ConfigArgs {
    /// Load the catalogue and the policy (checked against each other).
    pub fn load(&self) -> Result<Config, SourceErrors> {
        airlock::policy::load::load(&self.policy, self.tools.as_deref())
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Requests(c) => requests::run(c),
        Command::Approve(a) => approve::run(a),
        Command::Deny(a) => requests::deny(a),
        Command::Cancel(a) => requests::cancel(a),
        Command::Approver(c) => approve::run_approver(c),
        Command::Executor(a) => executor::run(a),
        Command::Audit(c) => requests::audit(c),
        Command::Tools(c) => tools::run(c),
        Command::Init(a) => init::run(*a),
        Command::Iam(a) => iam::run(a),
        Command::Policy(c) => policy::run(c),
        Command::Doctor(a) => doctor::run(a),
    }
}

/// Logs go to stderr (stdout is the MCP stream), without colour, at the level from
/// `AIRLOCK_LOG` or `RUST_LOG` (else `default`).
///
/// Whatever the level asked for, the HTTP, TLS and AWS crates are capped: each one logs at the
/// lower of the level asked for and its cap in [`LOG_CAPS`] (a cap never raises a level). At
/// debug and trace they print requests, headers and canonical requests, which carry session
/// tokens; `aws_config` prints the base credential's access key id at info. Secrets must not
/// reach a log even at trace level.
pub fn init_tracing(default: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let asked = std::env::var("AIRLOCK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.into());
    let filter = tracing_subscriber::EnvFilter::try_new(&asked)
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(LOG_CAPS.iter().copied());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_filter(filter.and(caps));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// The most each of these crates may log (see [`init_tracing`]).
pub const LOG_CAPS: &[(&str, tracing_subscriber::filter::LevelFilter)] = {
    use tracing_subscriber::filter::LevelFilter as L;
    &[
        ("aws_sigv4", L::OFF),
        ("aws_smithy_runtime", L::INFO),
        ("aws_smithy_runtime_api", L::INFO),
        ("aws_smithy_http_client", L::INFO),
        ("aws_smithy_types", L::INFO),
        ("aws_sdk_sts", L::INFO),
        // `loaded base credentials ... access_key_id: "AKIA..."` is an info event.
        ("aws_config", L::WARN),
        ("aws_credential_types", L::WARN),
        ("hyper", L::INFO),
        ("hyper_util", L::INFO),
        ("reqwest", L::INFO),
        ("h2", L::INFO),
        ("rustls", L::INFO),
        ("sqlx", L::WARN),
    ]
};

/// Configuration errors as JSON objects (`file`, `line`, `col`, `message`) for `--json` output.
pub(crate) fn errors_json(errs: &airlock::config::source::SourceErrors) -> Vec<serde_json::Value> {
    errs.0
        .iter()
        .map(|e| serde_json::json!({"file": display(&e.path), "line": e.line, "col": e.col, "message": e.message}))
        .collect()
}

pub fn display(p: &Path) -> String {
    p.display().to_string()
}
