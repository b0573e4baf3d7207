//! `airlock executor`: run due requests with the executor credential.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use airlock::approval::trust::{TrustFile, default_trust_path};
use airlock::credentials::StsBroker;
use airlock::executor::{DEFAULT_LEASE, Executor};
use airlock::policy::signature::Integrity;
use airlock::queue::Queue;
use airlock::queue::view::countdown;
use airlock::timefmt::now_ms;
use clap::Args;

use super::requests::Where;
use super::{exit, runtime};

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    #[command(flatten)]
    pub at: Where,
    /// Run what is due now, then exit (for cron or a systemd timer). Without it, keep running.
    #[arg(long)]
    pub once: bool,
    /// The approvers' trust file (default: ~/.config/airlock/approvers.toml).
    #[arg(long, env = "AIRLOCK_TRUST")]
    pub trust: Option<PathBuf>,
    /// How often to look for due requests and follow backups.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// How long a claim holds a request before another executor may resume it.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Print outcomes as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
pub fn run(a: ExecutorArgs) -> anyhow::Result<ExitCode> {
    let config = a.at.config.load().map_err(exit::Failure::config)?;
    let trust_path = a.trust.clone().unwrap_or_else(default_trust_path);
    let trust = TrustFile::load(&trust_path).map_err(exit::Failure::config)?;
    let integrity = Integrity::new(&config.policy, &config.catalogue, &trust_path);
    let rt = runtime()?;
    rt.block_on(async {
        let path = a.at.queue.path(Some(&config.policy));
        let queue = Arc::new(Queue::open(&path).await?);
        let broker = Arc::new(StsBroker::new(config.policy.session_duration));
        let progress = Arc::new(|s: &str| eprintln!("executor: {s}"));
        let lease = if a.lease.is_zero() {
            DEFAULT_LEASE
        } else {
            a.lease
        };
        let ex = Executor::new(
            config.policy.clone(),
            config.catalogue.clone(),
            trust,
            queue,
            broker,
            progress,
            integrity,
        )
        .with_lease(lease)
        .with_poll(a.poll.max(Duration::from_millis(100)));
        let mut failed = false;
        let mut last_wait = (String::new(), std::time::Instant::now());
        // Held requests are reported once per reason, not on every poll.
        let mut held = std::collections::HashMap::<String, String>::new();
        loop {
            for o in ex.run_once().await? {
                failed |= matches!(o.state.as_str(), "failed" | "held");
                if o.state == "held" {
                    if held.get(&o.request_id) == Some(&o.message) {
                        continue;
                    }
                    held.insert(o.request_id.clone(), o.message.clone());
                }
                if a.json {
                    println!("{}", serde_json::to_string(&o)?);
                } else {
                    println!("{} {}: {}", o.request_id, o.state, o.message);
                }
            }
            if a.once {
                break;
            }
            let (key, wait) = match ex.next_due().await? {
                Some((id, due)) => (
                    id.clone(),
                    format!("next: {id} runs in {}", countdown(due - now_ms())),
                ),
                None => (String::new(), "nothing approved; waiting".into()),
            };
            // A countdown for the person watching: on change, then once a minute.
            if key != last_wait.0 || last_wait.1.elapsed() >= Duration::from_secs(60) {
                eprintln!("executor: {wait}");
                last_wait = (key, std::time::Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(a.poll) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        Ok(if failed {
            ExitCode::from(exit::REFUSED)
        } else {
            ExitCode::SUCCESS
        })
    })
}
