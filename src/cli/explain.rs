//! `airlock explain TOOL [ARGS]`: the decision, the rule that matched and the exact session
//! policy for a call, without any credential or AWS call.

use std::process::ExitCode;
use std::sync::Arc;

use airlock::credentials::StsBroker;
use airlock::engine::Engine;
use airlock::policy::Decision;
use clap::Args;
use serde_json::{Map, Value, json};

use super::{ConfigArgs, exit};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The tool name, e.g. list_volumes.
    pub tool: String,
    /// The call's arguments as a JSON object, e.g. '{"environment":"staging"}'.
    #[arg(default_value = "{}")]
    pub arguments: String,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[allow(clippy::print_stdout)]
pub fn run(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let c = a.config.load().map_err(exit::Failure::config)?;
    let input: Map<String, Value> = match serde_json::from_str(&a.arguments) {
        Ok(Value::Object(m)) => m,
        Ok(_) => anyhow::bail!(
            "the arguments must be a JSON object, e.g. '{{\"environment\":\"staging\"}}'"
        ),
        Err(e) => anyhow::bail!("the arguments are not valid JSON: {e}"),
    };
    let engine = Engine::new(
        c.policy.clone(),
        c.catalogue.clone(),
        Arc::new(StsBroker::new(c.policy.session_duration)),
    );
    match engine.try_plan(&a.tool, &input) {
        Ok((_, plan)) => {
            let code = match plan.verdict.decision {
                Decision::Allow => ExitCode::SUCCESS,
                Decision::Approve => ExitCode::from(exit::APPROVAL),
                Decision::Deny => ExitCode::from(exit::REFUSED),
            };
            if a.json {
                let mut v = serde_json::to_value(&plan)?;
                if let Some(sp) = &plan.session_policy {
                    v["session_policy"]["document"] = serde_json::from_str(&sp.json)?;
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("tool:        {} ({})", plan.tool, plan.risk.as_str());
                if let Some(e) = &plan.environment {
                    println!("environment: {e}");
                }
                if !plan.resources.is_empty() {
                    println!("resources:   {}", plan.resources.join(", "));
                }
                println!(
                    "decision:    {} ({})",
                    plan.verdict.decision.as_str(),
                    plan.verdict.matched
                );
                println!("reason:      {}", plan.verdict.reason);
                match &plan.session_policy {
                    Some(sp) => {
                        let doc: Value = serde_json::from_str(&sp.json)?;
                        println!(
                            "session policy ({} chars, sha256 {}):",
                            sp.json.len(),
                            sp.hash
                        );
                        println!("{}", serde_json::to_string_pretty(&doc)?);
                    }
                    None => println!("session policy: none (no credential would be minted)"),
                }
            }
            Ok(code)
        }
        Err(r) => {
            // An unknown tool, a denied call and invalid arguments are all calls airlock would
            // refuse: exit 4, as the exit-code table says.
            let code = exit::REFUSED;
            if a.json {
                println!(
                    "{}",
                    json!({"decision": "refused", "message": r.to_string()})
                );
            } else {
                println!("decision:    refused");
                println!("reason:      {r}");
            }
            Ok(ExitCode::from(code))
        }
    }
}
