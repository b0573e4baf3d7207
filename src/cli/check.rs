//! `airlock check`: validate the policy and the catalogue together.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use airlock::config::source::{SourceError, SourceErrors};

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
    match a
        .config
        .load()
        .and_then(|c| missing_profiles(&a.config.policy).map(|()| c))
    {
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

/// Every `profile` / `executor_profile` the policy names must be in the AWS config files: a
/// misspelt name would otherwise only show up as a failed call.
fn missing_profiles(policy: &std::path::Path) -> Result<(), SourceErrors> {
    let uses = airlock::policy::load::profile_uses(policy)?;
    if uses.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            SourceErrors::from(SourceError::whole_file(
                policy,
                format!("cannot start: {e}"),
            ))
        })?;
    let errs: Vec<SourceError> = rt.block_on(async {
        let mut errs = Vec::new();
        for u in &uses {
            if let Some(why) = airlock::credentials::base::missing_profile(&u.name).await {
                errs.push(u.error(format!(
                    "environment `{}`: {}: {why}; correct the name or add the profile to those files",
                    u.env, u.key
                )));
            }
        }
        errs
    });
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SourceErrors::sorted(errs))
    }
}
