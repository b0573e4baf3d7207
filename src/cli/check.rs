//! `airlock check`: validate the policy and the catalogue together.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{ConfigArgs, exit};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[allow(clippy::print_stdout)]
pub fn run(a: CheckArgs) -> anyhow::Result<ExitCode> {
    match a.config.load() {
        Ok(c) => {
            let tools: Vec<&str> = c.catalogue.names().collect();
            if a.json {
                println!(
                    "{}",
                    json!({"ok": true, "policy": super::display(&c.policy.path), "policy_sha256": c.policy.hash,
                           "environments": c.policy.environment_names(), "tools": tools, "rules": c.policy.rules.len()})
                );
            } else {
                println!(
                    "ok: {} is valid: {} environment(s) ({}), {} rule(s), {} tool(s) ({})",
                    super::display(&c.policy.path),
                    c.policy.environments.len(),
                    c.policy.environment_names().join(", "),
                    c.policy.rules.len(),
                    tools.len(),
                    tools.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            if a.json {
                let list = super::errors_json(&errs);
                println!("{}", json!({"ok": false, "errors": list}));
                Ok(ExitCode::from(exit::CONFIG))
            } else {
                Err(exit::Failure::config(errs))
            }
        }
    }
}
