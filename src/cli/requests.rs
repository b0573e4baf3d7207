//! `airlock requests list|show`, `deny`, `cancel`, `audit verify`: the human side of the queue.

use std::process::ExitCode;
use std::sync::Arc;

use airlock::backup::BackupPlan;
use airlock::queue::view::{RequestView, countdown, view};
use airlock::queue::{Queue, QueueError, State};
use airlock::timefmt::{format_ms, now_ms};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{ConfigArgs, QueueArgs, cli_actor, exit, runtime};

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List requests (newest last).
    List(ListArgs),
    /// Show one request: the call, the resource as it was seen, approvals, backup plan, and the
    /// time left before it may run.
    Show(ShowArgs),
}

#[derive(Debug, Clone, Args)]
pub struct Where {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
}

impl Where {
    /// Open the queue: `--db` needs no policy; otherwise the policy may name the file.
    pub async fn open(&self) -> anyhow::Result<Arc<Queue>> {
        let path = match &self.queue.db {
            Some(p) => p.clone(),
            None => {
                let c = self.config.load().map_err(exit::Failure::config)?;
                self.queue.path(Some(&c.policy))
            }
        };
        Ok(Arc::new(Queue::open(&path).await?))
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub at: Where,
    /// Only requests in this state (pending, approved, executing, executed, failed, denied,
    /// cancelled, expired).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<State>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub at: Where,
    /// The request id (r-...).
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    #[command(flatten)]
    pub at: Where,
    pub id: String,
    /// Why (recorded in the audit log, shown to the agent).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub at: Where,
    pub id: String,
    #[arg(long, default_value = "cancelled by a person")]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and that it explains every request and approval; exit 4 if not.
    Verify(VerifyArgs),
    /// Print the audit log.
    Show(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub at: Where,
    #[arg(long)]
    pub json: bool,
}

/// `--state`: a state's name (a usage error, exit 2, otherwise).
fn parse_state(s: &str) -> Result<State, String> {
    State::parse(s).ok_or_else(|| {
        let all: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state `{s}`; use one of: {}", all.join(", "))
    })
}

#[allow(clippy::print_stdout)]
pub fn run(c: RequestsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match c {
            RequestsCommand::List(a) => {
                let state = a.state;
                let q = a.at.open().await?;
                let now = now_ms();
                q.expire_due(now).await?;
                let rows = q.list(state).await?;
                if a.json {
                    let mut out = Vec::new();
                    for r in &rows {
                        out.push(view(r, &q.approvals(&r.id).await?, now));
                    }
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else if rows.is_empty() {
                    println!(
                        "no requests{}",
                        state.map(|s| format!(" in state {s}")).unwrap_or_default()
                    );
                } else {
                    println!(
                        "{:<15} {:<10} {:<22} {:<10} {:<24} {:<9} WHEN",
                        "ID", "STATE", "TOOL", "ENV", "RESOURCE", "APPROVALS"
                    );
                    for r in &rows {
                        let n = q.approvals(&r.id).await?.len();
                        let when = match r.state {
                            State::Pending => {
                                format!("expires in {}", countdown(r.expires_at - now))
                            }
                            State::Approved => {
                                format!("due in {}", countdown(r.not_before.unwrap_or(now) - now))
                            }
                            _ => format!("updated {}", format_ms(r.updated_at)),
                        };
                        println!(
                            "{:<15} {:<10} {:<22} {:<10} {:<24} {:<9} {}",
                            r.id,
                            r.state,
                            r.tool,
                            r.environment,
                            r.resource_id,
                            format!("{n}/{}", r.approvers_required),
                            when
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            RequestsCommand::Show(a) => {
                let q = a.at.open().await?;
                let now = now_ms();
                q.expire_due(now).await?;
                let r = q.get(&a.id).await.map_err(refused)?;
                let v = view(&r, &q.approvals(&r.id).await?, now);
                if a.json {
                    let mut j = serde_json::to_value(&v)?;
                    if let (Ok(p), Some(m)) = (backup_plan(&v, &a.at.config), j.as_object_mut()) {
                        m.insert("backup_plan".into(), serde_json::to_value(p)?);
                    }
                    println!("{}", serde_json::to_string_pretty(&j)?);
                } else {
                    print!("{}", describe(&v, &a.at.config));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// A request for a person: what will happen, to what, when.
pub fn describe(v: &RequestView, config: &ConfigArgs) -> String {
    let mut out = String::new();
    out.push_str(&format!("request     {}  ({})\n", v.request_id, v.state));
    out.push_str(&format!("action      {} on {}\n", v.tool, v.resource_id));
    out.push_str(&format!(
        "where       environment {} = account {}, region {}\n",
        v.environment, v.account, v.region
    ));
    out.push_str(&format!("resource    {}\n", v.resource_arn));
    let res = &v.resource;
    if let Some(fields) = res.as_object().filter(|o| !o.contains_key("attachments")) {
        // Any resource but a volume: what the describe tool showed, field by field.
        let shown: Vec<String> = fields
            .iter()
            .filter(|(k, x)| !x.is_null() && *k != "protected")
            .map(|(k, x)| match x {
                Value::String(t) => format!("{k} {t}"),
                other => format!("{k} {other}"),
            })
            .collect();
        out.push_str(&format!("            {}\n", shown.join(", ")));
    } else if res.is_object() {
        let att: Vec<String> = res["attachments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["instance_id"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "            size {} GiB, state {}, attached to {}, tags {}\n",
            res["size_gib"],
            res["state"].as_str().unwrap_or("?"),
            if att.is_empty() {
                "nothing".to_string()
            } else {
                att.join(", ")
            },
            res["tags"]
        ));
    }
    out.push_str(&format!("reason      {}\n", v.reason));
    out.push_str(&format!(
        "asked by    {} {} (session {}) at {}\n",
        v.requested_by.client, v.requested_by.client_version, v.requested_by.session, v.created_at
    ));
    let backup = match backup_plan(v, config) {
        Ok(p) => p.for_person(),
        Err(why) => why.into(),
    };
    out.push_str(&format!("backup      {backup}\n"));
    out.push_str(&format!(
        "approvals   {} of {} ({}), cooldown {}\n",
        v.approvals.len(),
        v.approvals_required,
        v.rule,
        v.cooldown
    ));
    for a in &v.approvals {
        out.push_str(&format!(
            "            - {} at {}\n",
            a.approver, a.approved_at
        ));
    }
    if let Some(d) = &v.due_in {
        out.push_str(&format!(
            "runs in     {d} (at {}); cancel before then with `airlock cancel {}`\n",
            v.not_before.as_deref().unwrap_or("-"),
            v.request_id
        ));
    }
    if let Some(o) = &v.outcome {
        out.push_str(&format!("outcome     {o}\n"));
    }
    out.push_str(&format!("call hash   {}\n", v.call_hash));
    out.push_str(&format!("next        {}\n", v.next));
    out
}

/// The backup the executor will take for this request, from the tool's declared `[backup]` and
/// the environment in the policy (or why that cannot be said).
fn backup_plan(v: &RequestView, config: &ConfigArgs) -> Result<BackupPlan, &'static str> {
    let c = config.load().map_err(|_| "unknown (policy not readable)")?;
    let env = c.policy.environments.get(&v.environment);
    let tool = c.catalogue.get(&v.tool);
    match (tool, env) {
        (Some(t), Some(e)) => airlock::backup::plan(t, e, &v.request_id)
            .ok_or("unknown (the tool declares no backup)"),
        _ => Err("unknown (policy or tool not found)"),
    }
}

fn refused(e: QueueError) -> anyhow::Error {
    match e {
        QueueError::NotFound(_) | QueueError::WrongState { .. } => {
            anyhow::Error::new(exit::Failure {
                code: exit::REFUSED,
                message: e.to_string(),
            })
        }
        other => other.into(),
    }
}

#[allow(clippy::print_stdout)]
pub fn deny(a: DenyArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let q = a.at.open().await?;
        let r = q
            .transition(
                &a.id,
                &[State::Pending],
                State::Denied,
                &cli_actor(),
                "denied",
                json!({"reason": a.reason}),
                now_ms(),
            )
            .await
            .map_err(refused)?;
        println!("{} denied: {}", r.id, a.reason);
        Ok(ExitCode::SUCCESS)
    })
}

#[allow(clippy::print_stdout)]
pub fn cancel(a: CancelArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let q = a.at.open().await?;
        let r = q
            .transition(
                &a.id,
                &[State::Pending, State::Approved],
                State::Cancelled,
                &cli_actor(),
                "cancelled",
                json!({"reason": a.reason}),
                now_ms(),
            )
            .await
            .map_err(refused)?;
        println!("{} cancelled; nothing will run", r.id);
        Ok(ExitCode::SUCCESS)
    })
}

#[allow(clippy::print_stdout)]
pub fn audit(c: AuditCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match c {
            AuditCommand::Verify(a) => {
                let q = a.at.open().await?;
                let report = q.verify_audit().await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else if report.ok() {
                    println!("ok: {} events, chain head {}", report.events, report.head);
                } else {
                    println!("AUDIT LOG FAILED VERIFICATION ({} events):", report.events);
                    for p in &report.problems {
                        println!("  - {p}");
                    }
                }
                Ok(if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(exit::REFUSED)
                })
            }
            AuditCommand::Show(a) => {
                let q = a.at.open().await?;
                let events = q.events().await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&events)?);
                } else {
                    for e in events {
                        println!(
                            "{:>5} {} {:<15} {:<20} {:<40} {}",
                            e.seq,
                            format_ms(e.at),
                            e.request_id.unwrap_or_default(),
                            e.event,
                            e.actor,
                            e.detail
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
