//! `airlock doctor`: the check-list of the five controls (see docs/doctor.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use airlock::approval::trust::default_trust_path;
use airlock::doctor::{CONTROLS, Inputs, Level, run as run_checks};
use clap::Args;
use serde_json::json;

use super::{ConfigArgs, QueueArgs, exit, runtime};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The project directory the agent works in (default: the current directory).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The approvers' trust file (default: ~/.config/airlock/approvers.toml).
    #[arg(long, env = "AIRLOCK_TRUST")]
    pub trust: Option<PathBuf>,
    /// Do not contact AWS: the broker and executor-role checks are skipped.
    #[arg(long)]
    pub skip_aws: bool,
    /// Print the check-list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[allow(clippy::print_stdout)]
pub fn run(a: DoctorArgs) -> anyhow::Result<ExitCode> {
    // A workspace that is not there (or not readable) would scan as "0 files read" and pass.
    if let Err(e) = std::fs::read_dir(&a.dir) {
        return Err(anyhow::Error::new(exit::Failure {
            code: 2,
            message: format!(
                "--dir {}: cannot read this directory ({e}); give the project directory the agent works in",
                a.dir.display()
            ),
        }));
    }
    let config = a
        .config
        .load()
        .map(|c| (c.policy, c.catalogue))
        .map_err(|e| e.to_string());
    let db_path = a
        .queue
        .path(config.as_ref().ok().map(|(p, _)| Arc::as_ref(p)));
    let inputs = Inputs {
        workspace: a.dir.clone(),
        config,
        trust_path: a.trust.clone().unwrap_or_else(default_trust_path),
        db_path,
        env: std::env::vars().collect(),
        aws: !a.skip_aws,
    };
    let lines = runtime()?.block_on(run_checks(&inputs));
    let worst = lines.iter().map(|l| l.level).max().unwrap_or(Level::Pass);
    let count = |lv: Level| lines.iter().filter(|l| l.level == lv).count();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": worst != Level::Fail,
                "workspace": super::display(&a.dir),
                "controls": CONTROLS,
                "lines": lines,
                "counts": {"pass": count(Level::Pass), "warn": count(Level::Warn), "fail": count(Level::Fail), "skip": count(Level::Skip)},
            }))?
        );
    } else {
        println!("airlock doctor: workspace {}", a.dir.display());
        for (n, title) in CONTROLS.iter().enumerate() {
            println!("\n{}. {title}", n + 1);
            for l in lines.iter().filter(|l| l.control as usize == n + 1) {
                println!("   {:<4}  {}", l.level.as_str(), l.message);
                if let Some(f) = &l.fix {
                    println!("         fix: {f}");
                }
            }
        }
        println!(
            "\n{} fail, {} warn, {} pass, {} skipped",
            count(Level::Fail),
            count(Level::Warn),
            count(Level::Pass),
            count(Level::Skip)
        );
    }
    Ok(if worst == Level::Fail {
        ExitCode::from(exit::REFUSED)
    } else {
        ExitCode::SUCCESS
    })
}
