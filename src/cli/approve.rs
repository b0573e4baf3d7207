//! `airlock approve` and `airlock approver init`: the human's signature.
//!
//! Everything interactive goes through the controlling terminal (/dev/tty), never stdin: the
//! approver types the resource id and the passphrase, as a person at a keyboard. There is no
//! flag or environment variable that skips either prompt. Every refused attempt is recorded in
//! the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock::approval::keys::default_key_path;
use airlock::approval::trust::{TrustFile, default_trust_path};
use airlock::approval::tty::Terminal;
use airlock::approval::{ApprovalError, ApproverKey, approve};
use airlock::credentials::StsBroker;
use airlock::engine::Engine;
use airlock::policy::load::Config;
use airlock::policy::{Decision, Rule};
use airlock::queue::view::{countdown, view};
use airlock::queue::{Approval, Queue, State};
use airlock::timefmt::{format_ms, now_ms};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::requests::{Where, describe};
use super::{cli_actor, exit, runtime};

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub at: Where,
    /// The request id (r-...).
    pub id: String,
    /// Your approver key (default: the one approver-*.key in ~/.config/airlock).
    #[arg(long, env = "AIRLOCK_APPROVER_KEY")]
    pub key: Option<PathBuf>,
    /// The approvers' trust file (default: ~/.config/airlock/approvers.toml).
    #[arg(long, env = "AIRLOCK_TRUST")]
    pub trust: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ApproverCommand {
    /// Create an approver key pair; the private key is encrypted under a passphrase you type at
    /// the terminal. Prints the public key to add to the approvers' trust file.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Your name as approvers will see it (letters, digits, . _ -).
    #[arg(long)]
    pub name: String,
    /// Where to write the encrypted key (default: ~/.config/airlock/approver-NAME.key).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

const MIN_PASSPHRASE: usize = 12;

fn refuse(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(exit::Failure {
        code: exit::REFUSED,
        message: message.into(),
    })
}

#[allow(clippy::print_stdout)]
pub fn run_approver(c: ApproverCommand) -> anyhow::Result<ExitCode> {
    let ApproverCommand::Init(a) = c;
    airlock::approval::keys::check_name(&a.name).map_err(|e| refuse(e.to_string()))?;
    let path = a.key.clone().unwrap_or_else(|| default_key_path(&a.name));
    if path.exists() {
        return Err(refuse(format!(
            "{} already exists; airlock never overwrites a key",
            path.display()
        )));
    }
    let mut t = Terminal::open("airlock approver init").map_err(|e| refuse(e.to_string()))?;
    t.say(&format!(
        "Creating approver key `{}` at {}\n",
        a.name,
        path.display()
    ))?;
    let pass = t.ask_secret(&format!(
        "Passphrase (at least {MIN_PASSPHRASE} characters): "
    ))?;
    if pass.chars().count() < MIN_PASSPHRASE {
        return Err(refuse(format!(
            "the passphrase must have at least {MIN_PASSPHRASE} characters"
        )));
    }
    let again = t.ask_secret("Passphrase again: ")?;
    if again != pass {
        return Err(refuse("the passphrases differ; nothing was written"));
    }
    let key = ApproverKey::generate(&a.name);
    key.save(&path, &pass)?;
    println!(
        "# Approver key written to {} (encrypted; keep it off shared disks).",
        path.display()
    );
    println!("# Add these lines to the approvers' trust file that the executor reads");
    println!(
        "# (default {}), owned by the operator, not writable by the agent's user:",
        default_trust_path().display()
    );
    println!("[[approver]]");
    println!("name = \"{}\"", a.name);
    println!("public_key = \"{}\"", key.public());
    Ok(ExitCode::SUCCESS)
}

/// The key file to use: the one given, or the only approver key in the config folder.
pub(crate) fn key_path(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let dir = default_key_path("x")
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let keys: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("approver-") && n.ends_with(".key"))
                })
                .collect()
        })
        .unwrap_or_default();
    match keys.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(refuse(format!(
            "no approver key in {}; create one with `airlock approver init --name YOU`, or pass --key",
            dir.display()
        ))),
        _ => Err(refuse(format!(
            "several approver keys in {}; choose one with --key",
            dir.display()
        ))),
    }
}

/// Every refusal of an approval leaves an audit trace.
struct Refusals<'a> {
    q: &'a Queue,
    id: &'a str,
    actor: &'a str,
}

impl Refusals<'_> {
    async fn refuse(&self, why: String) -> anyhow::Error {
        let _ = self
            .q
            .note(
                Some(self.id),
                self.actor,
                "approval_refused",
                json!({"reason": why}),
                now_ms(),
            )
            .await;
        refuse(format!("not approved: {why}"))
    }
}

#[allow(clippy::print_stdout)]
pub fn run(a: ApproveArgs) -> anyhow::Result<ExitCode> {
    let config = a.at.config.load().map_err(exit::Failure::config)?;
    runtime()?.block_on(async {
        let path = a.at.queue.path(Some(&config.policy));
        let q = Queue::open(&path).await?;
        let actor = cli_actor();
        q.expire_due(now_ms()).await?;
        let no = Refusals {
            q: &q,
            id: &a.id,
            actor: &actor,
        };
        let r = q.get(&a.id).await.map_err(|e| refuse(e.to_string()))?;
        let rule = match still_queued(&r, &config) {
            Ok(rule) => rule,
            Err(why) => return Err(no.refuse(why).await),
        };
        let trust_path = a.trust.clone().unwrap_or_else(default_trust_path);
        let trust = match TrustFile::load(&trust_path) {
            Ok(t) => t,
            Err(e) => return Err(no.refuse(format!("{e}")).await),
        };
        let key_file = match key_path(&a.key) {
            Ok(k) => k,
            Err(e) => return Err(no.refuse(e.to_string()).await),
        };
        let mut t = match Terminal::open("airlock approve") {
            Ok(t) => t,
            Err(e) => return Err(no.refuse(e.to_string()).await),
        };
        let approvals = q.approvals(&r.id).await?;
        show(&mut t, &r, &approvals, &rule, &trust, &config, &a.at.config)?;
        let key = match sign_in(&mut t, &r, &key_file)? {
            Ok(k) => k,
            Err(why) => return Err(no.refuse(why).await),
        };
        let Some(trusted) = trust.find(&key.public()) else {
            return Err(no
                .refuse(format!(
                    "key {} ({}) is not in the trust file {}; the executor would reject this approval",
                    key.name(),
                    key.public().fingerprint(),
                    trust.path.display()
                ))
                .await);
        };
        let approved_at = now_ms();
        let approval = approve(&key, &trusted.name, &r, approved_at, rule.cooldown.as_millis() as i64);
        let not_before = approval.not_before;
        let window = config.policy.execution_window.as_millis() as i64;
        let (after, count) = match q
            .add_approval(&approval, rule.approvers as i64, window, &format!("{actor}:{}", trusted.name), approved_at)
            .await
        {
            Ok(x) => x,
            Err(e) => return Err(no.refuse(e.to_string()).await),
        };
        let msg = if after.state == State::Approved {
            let due = after.not_before.unwrap_or(not_before);
            format!(
                "{} approved by {} ({count}/{}); it may run at {} (in {}). Cancel before then with `airlock cancel {}`.",
                r.id,
                trusted.name,
                rule.approvers,
                format_ms(due),
                countdown(due - now_ms()),
                r.id
            )
        } else {
            format!("{} approval recorded for {} ({count}/{}); it needs {} more approver(s).", r.id, trusted.name, rule.approvers, rule.approvers as i64 - count)
        };
        // The result goes to stdout (for scripts and logs), and to the terminal when stdout is
        // somewhere else.
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            t.say(&format!("{msg}\n"))?;
        }
        println!("{msg}");
        Ok(ExitCode::SUCCESS)
    })
}

/// The request may still be approved, and the current policy still queues exactly this call:
/// the rule it falls under, or why not.
fn still_queued(r: &airlock::queue::Request, config: &Config) -> Result<Rule, String> {
    if r.state != State::Pending {
        return Err(format!("request {} is {}, not pending", r.id, r.state));
    }
    if !r.call_intact() {
        return Err("the stored call does not match its hash: the request was altered after it was made; deny it".into());
    }
    if r.policy_hash != config.policy.hash {
        return Err(format!(
            "the policy changed since this request was made (request: {}, now: {}); the agent must make the request again",
            &r.policy_hash[..12.min(r.policy_hash.len())],
            &config.policy.hash[..12]
        ));
    }
    let engine = Engine::new(
        config.policy.clone(),
        config.catalogue.clone(),
        Arc::new(StsBroker::new(config.policy.session_duration)),
    );
    let call = r.call().ok_or("unreadable call")?;
    let input: Map<String, Value> = call.arguments.as_object().cloned().unwrap_or_default();
    let rule = match engine.plan(&call.tool, &input) {
        Ok((_, plan)) if plan.verdict.decision == Decision::Approve => {
            plan.verdict.rule.ok_or("no rule")?
        }
        Ok((_, plan)) => {
            return Err(format!(
                "the policy does not queue this call any more ({}: {})",
                plan.verdict.matched, plan.verdict.reason
            ));
        }
        Err(e) => return Err(format!("the call is refused by the current policy: {e}")),
    };
    let resource: Value = serde_json::from_str(&r.resource_json).unwrap_or(Value::Null);
    if resource["protected"] == json!(true) {
        return Err(format!("{} is protected", r.resource_id));
    }
    Ok(rule)
}

/// What the approver reads before signing: the request, the policy's signature, what
/// approving does.
fn show(
    t: &mut Terminal,
    r: &airlock::queue::Request,
    approvals: &[Approval],
    rule: &Rule,
    trust: &TrustFile,
    config: &Config,
    args: &super::ConfigArgs,
) -> anyhow::Result<()> {
    let v = view(r, approvals, now_ms());
    t.say("\n")?;
    t.say(&describe(&v, args))?;
    // A request queued before its tool declared a precondition (or by an older airlock) may
    // name a resource AWS will refuse to act on: say so before anyone signs.
    let resource: Value = serde_json::from_str(&r.resource_json).unwrap_or(Value::Null);
    if let Some(tool) = config.catalogue.get(&r.tool)
        && let Some((req, found)) = tool.describe.as_ref().and_then(|d| d.unmet(&resource))
    {
        t.say(&format!(
            "\nWARNING: as seen when it was requested, {}: {}. The executor checks again and fails the request without a backup if it is still so; deny it unless that is about to change.\n",
            r.resource_id,
            req.why(found)
        ))?;
    }
    // Approving does not need a signed policy, but the executor holds requests until it is.
    let st = airlock::policy::signature::status(
        &airlock::policy::signature::Manifest::of(&config.policy, &config.catalogue),
        &airlock::policy::signature::signature_path(&config.policy.path),
        Ok(trust),
        &trust.path,
    );
    if !st.signed {
        t.say(&format!(
            "\nNote: the policy is not signed by a trusted approver ({}). The executor holds approved requests until an approver runs `airlock policy sign`.\n",
            st.problem.as_deref().unwrap_or("no valid signature")
        ))?;
    }
    t.say(&format!(
        "\nApproving lets the executor run {} on {} in {} after a {} cooldown ({} approval(s) needed, {} so far).\n",
        r.tool,
        r.resource_id,
        r.environment,
        countdown(rule.cooldown.as_millis() as i64),
        rule.approvers,
        approvals.len()
    ))?;
    Ok(())
}

/// The typed resource id and the passphrase: the approver's key, or why there is none.
fn sign_in(
    t: &mut Terminal,
    r: &airlock::queue::Request,
    key_file: &std::path::Path,
) -> anyhow::Result<Result<ApproverKey, String>> {
    let typed = t.ask_line(&format!(
        "Type the resource id ({}) to approve, anything else to stop: ",
        r.resource_id
    ))?;
    if typed.trim() != r.resource_id {
        t.say("Not approved.\n")?;
        return Ok(Err("the typed resource id did not match".into()));
    }
    let pass = t.ask_secret(&format!("Passphrase for {}: ", key_file.display()))?;
    Ok(match ApproverKey::load(key_file, &pass) {
        Ok(k) => Ok(k),
        Err(ApprovalError::BadPassphrase) => {
            t.say("Wrong passphrase. Not approved.\n")?;
            Err("wrong passphrase".into())
        }
        Err(e) => Err(e.to_string()),
    })
}
