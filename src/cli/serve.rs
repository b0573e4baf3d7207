//! `airlock serve`: MCP over stdio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use airlock::approval::trust::default_trust_path;
use airlock::credentials::StsBroker;
use airlock::engine::Engine;
use airlock::mcp::AirlockServer;
use airlock::policy::signature::Integrity;
use clap::Args;

use super::{ConfigArgs, QueueArgs, exit};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The approvers' trust file that decides whose policy signature counts (default:
    /// ~/.config/airlock/approvers.toml). Read on every destructive request.
    #[arg(long, env = "AIRLOCK_TRUST")]
    pub trust: Option<PathBuf>,
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let c = a.config.load().map_err(exit::Failure::config)?;
    tracing::info!(
        policy = %c.policy.path.display(),
        policy_sha256 = %c.policy.hash,
        tools = c.catalogue.names().count(),
        "airlock serving MCP on stdio"
    );
    let broker = Arc::new(StsBroker::new(c.policy.session_duration));
    let db = a.queue.path(Some(&c.policy));
    tracing::info!(queue = %db.display(), "destructive requests are queued here (opened on first use)");
    let trust = a.trust.clone().unwrap_or_else(default_trust_path);
    let integrity = Arc::new(Integrity::new(&c.policy, &c.catalogue, &trust));
    let st = integrity.check();
    if st.signed {
        tracing::info!(manifest = %st.manifest_hash, "the policy is signed by a trusted approver");
    } else {
        tracing::warn!(
            "the policy is not signed by a trusted approver ({}): read tools work, destructive requests are refused until a human runs `airlock policy sign`",
            st.problem.as_deref().unwrap_or_default()
        );
    }
    let engine = Arc::new(
        Engine::new(c.policy, c.catalogue, broker)
            .with_queue_path(db)
            .with_integrity(integrity),
    );
    // One thread: a session is one client whose calls mostly wait on the network; a single
    // thread keeps start-up and memory small (no worker threads, no per-thread malloc arenas).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(AirlockServer::new(engine).serve_stdio())?;
    Ok(ExitCode::SUCCESS)
}
