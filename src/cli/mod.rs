//! The command line: one file per subcommand group. Each command returns an exit code; errors
//! carry their code through [`exit::Failure`].

pub mod check;
pub mod exit;
pub mod explain;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use airlock::catalogue::Catalogue;
use airlock::policy::Policy;
use airlock::source::SourceErrors;
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

/// The loaded configuration.
pub struct Config {
    pub policy: Arc<Policy>,
    pub catalogue: Arc<Catalogue>,
}

impl ConfigArgs {
    /// Load the catalogue and the policy (checked against each other).
    pub fn load(&self) -> Result<Config, SourceErrors> {
        // The policy may name the tools folder, and its rules are checked against the
        // catalogue: read it once for the folder, then validate it for real.
        let tools_dir = match &self.tools {
            Some(t) => Some(t.clone()),
            None => Policy::load(&self.policy, None)?.tools_dir,
        };
        let catalogue = match tools_dir {
            Some(d) => Catalogue::load_dir(&d)?,
            None => Catalogue::builtin()?,
        };
        let policy = Policy::load(&self.policy, Some(&catalogue))?;
        Ok(Config {
            policy: Arc::new(policy),
            catalogue: Arc::new(catalogue),
        })
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
    }
}

/// Logs go to stderr (stdout is the MCP stream), without colour, at the level from
/// `AIRLOCK_LOG` or `RUST_LOG` (default: info for airlock, warnings for the rest).
pub fn init_tracing() {
    let filter = std::env::var("AIRLOCK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "airlock=info,warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("airlock=info,warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

pub fn display(p: &Path) -> String {
    p.display().to_string()
}
