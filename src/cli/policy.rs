//! `airlock policy sign` and `airlock policy status`: a human's signature over policy.toml and
//! the tool files it enables (see docs/signed-policy.md).
//!
//! Signing is interactive on the controlling terminal, like `airlock approve`: the signer sees
//! what they sign, types the first characters of its hash, then their passphrase. There is no
//! flag or environment variable that skips either prompt.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock::approval::trust::{TrustFile, default_trust_path};
use airlock::approval::tty::Terminal;
use airlock::approval::{ApprovalError, ApproverKey};
use airlock::catalogue::Catalogue;
use airlock::policy::Policy;
use airlock::policy::signature::{
    Manifest, PolicySignature, Status, enabled_tools, signature_path, status, write_signature,
};
use airlock::timefmt::now_ms;
use clap::{Args, Subcommand};

use super::{ConfigArgs, exit};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the policy and the tool files it enables, and sign their hash with your approver
    /// key (typed at the terminal).
    Sign(SignArgs),
    /// Is the policy signed by a trusted approver, by whom, and what changed since? Exits 0 when
    /// signed, 4 when not.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Your approver key (default: the one approver-*.key in ~/.config/airlock).
    #[arg(long, env = "AIRLOCK_APPROVER_KEY")]
    pub key: Option<PathBuf>,
    /// The approvers' trust file (default: ~/.config/airlock/approvers.toml).
    #[arg(long, env = "AIRLOCK_TRUST")]
    pub trust: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub queue: super::QueueArgs,
    /// The approvers' trust file (default: ~/.config/airlock/approvers.toml).
    #[arg(long, env = "AIRLOCK_TRUST")]
    pub trust: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

fn refuse(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(exit::Failure {
        code: exit::REFUSED,
        message: message.into(),
    })
}

pub fn run(c: PolicyCommand) -> anyhow::Result<ExitCode> {
    match c {
        PolicyCommand::Sign(a) => sign(a),
        PolicyCommand::Status(a) => show_status(a),
    }
}

/// The status of the policy on disk now.
fn current_status(
    config: &ConfigArgs,
    trust: &Option<PathBuf>,
) -> anyhow::Result<(super::Config, Manifest, Status)> {
    let c = config.load().map_err(exit::Failure::config)?;
    let manifest = Manifest::of(&c.policy, &c.catalogue);
    let trust_path = trust.clone().unwrap_or_else(default_trust_path);
    let trust = TrustFile::load(&trust_path).map_err(|e| e.to_string());
    let st = status(
        &manifest,
        &signature_path(&c.policy.path),
        trust.as_ref().map_err(Clone::clone),
        &trust_path,
    );
    Ok((c, manifest, st))
}

#[allow(clippy::print_stdout)]
fn show_status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let (c, _, mut st) = current_status(&a.config, &a.trust)?;
    // Rollback: serve and the executor record the newest trusted signature they honoured in
    // the queue; an older one is not honoured, so status says so too (read only; no queue
    // file yet means nothing was honoured yet).
    let db = a.queue.path(Some(&c.policy));
    if st.signed && db.exists() {
        let newest = super::runtime()?.block_on(async {
            let q = airlock::queue::Queue::open(&db).await?;
            let n = q
                .newest_policy_signature(&airlock::policy::signature::policy_key(&c.policy.path))
                .await;
            q.close().await;
            n
        })?;
        airlock::policy::signature::refuse_rollback(&mut st, &c.policy.path, newest);
    }
    if a.json {
        let mut v = serde_json::to_value(&st)?;
        v["policy"] = super::display(&c.policy.path).into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "policy: {} (manifest sha256 {})",
            super::display(&c.policy.path),
            st.manifest_hash
        );
        if st.signed {
            for s in &st.signed_by {
                println!(
                    "signed: yes, by {} ({}) at {}",
                    s.name, s.fingerprint, s.signed_at
                );
            }
        } else {
            println!(
                "signed: NO: {}",
                st.problem.as_deref().unwrap_or("no valid signature")
            );
            if !st.changes.is_empty() {
                println!("changed since the last trusted signature:");
                for ch in &st.changes {
                    println!("  - {ch}");
                }
            }
            println!(
                "`airlock serve` refuses new destructive requests and the executor holds due ones until an approver reviews the policy and runs `airlock policy sign`."
            );
        }
    }
    Ok(if st.signed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::REFUSED)
    })
}

/// What the signer sees before signing.
fn summary(policy: &Policy, catalogue: &Catalogue, st: &Status) -> String {
    let mut s = format!(
        "Policy {} (sha256 {})\n\nEnvironments:\n",
        policy.path.display(),
        policy.hash
    );
    for e in policy.environments.values() {
        s.push_str(&format!(
            "  {:<12} account {} region {}{}{}\n",
            e.name,
            e.account,
            e.region,
            e.executor_role
                .as_ref()
                .map(|r| format!(" executor_role {r}"))
                .unwrap_or_default(),
            e.backup_region
                .as_ref()
                .map(|r| format!(" backup_region {r}"))
                .unwrap_or_default(),
        ));
    }
    s.push_str(
        "\nRules, in the order they are read (a matching deny wins, then approve, then allow):\n",
    );
    for r in &policy.rules {
        let envs = r
            .environments
            .as_ref()
            .map(|e| e.join(", "))
            .unwrap_or_else(|| "every environment".into());
        let res = r
            .resources
            .as_ref()
            .map(|g| {
                format!(
                    " on {}",
                    g.iter()
                        .map(|g| g.text.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default();
        let extra = match r.decision {
            airlock::policy::Decision::Approve => format!(
                " ({} approver(s), cooldown {})",
                r.approvers,
                humantime::format_duration(r.cooldown)
            ),
            _ => String::new(),
        };
        s.push_str(&format!(
            "  #{} line {}: {} {} in {}{res}{extra}\n",
            r.index,
            r.line,
            r.decision.as_str(),
            r.tools.join(", "),
            envs
        ));
    }
    s.push_str(&format!(
        "\nProtected: ids [{}], tags [{}]\n",
        policy.protected_ids.join(", "),
        policy
            .protected_tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s.push_str(&format!(
        "\nEnabled tools ({}):\n",
        if catalogue.is_builtin() {
            "built into this airlock binary"
        } else {
            "from the tools folder"
        }
    ));
    for t in enabled_tools(policy, catalogue) {
        s.push_str(&format!(
            "  {:<24} {:<12} {} sha256 {}\n",
            t.name,
            t.risk.as_str(),
            t.path.display(),
            catalogue
                .file_sha256(&t.name)
                .unwrap_or_default()
                .get(..12)
                .unwrap_or_default()
        ));
    }
    s.push('\n');
    if st.signed {
        let by: Vec<String> = st.signed_by.iter().map(|s| s.name.clone()).collect();
        s.push_str(&format!("Already signed by: {}\n", by.join(", ")));
    } else {
        s.push_str(&format!(
            "Not signed now: {}\n",
            st.problem.as_deref().unwrap_or("no valid signature")
        ));
    }
    s.push_str(&format!(
        "Manifest hash (what you sign): {}\n",
        st.manifest_hash
    ));
    s
}

#[allow(clippy::print_stdout)]
fn sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let (c, manifest, st) = current_status(&a.config, &a.trust)?;
    let trust_path = a.trust.clone().unwrap_or_else(default_trust_path);
    let trust = TrustFile::load(&trust_path).map_err(|e| refuse(e.to_string()))?;
    let key_file = super::approve::key_path(&a.key)?;
    let mut t = Terminal::open("airlock policy sign").map_err(|e| refuse(e.to_string()))?;
    t.say("\n")?;
    t.say(&summary(&c.policy, &c.catalogue, &st))?;
    t.say("\nSigning tells `airlock serve` and the executor to honour exactly these files for destructive work.\n")?;
    let want = &st.manifest_hash[..8];
    let typed = t.ask_line(&format!(
        "Type the first 8 characters of the manifest hash ({want}) to sign, anything else to stop: "
    ))?;
    if typed.trim() != want {
        t.say("Not signed.\n")?;
        return Err(refuse("not signed: the typed hash did not match"));
    }
    let pass = t.ask_secret(&format!("Passphrase for {}: ", key_file.display()))?;
    let key = match ApproverKey::load(&key_file, &pass) {
        Ok(k) => k,
        Err(ApprovalError::BadPassphrase) => {
            t.say("Wrong passphrase. Not signed.\n")?;
            return Err(refuse("not signed: wrong passphrase"));
        }
        Err(e) => return Err(refuse(format!("not signed: {e}"))),
    };
    let Some(trusted) = trust.find(&key.public()) else {
        return Err(refuse(format!(
            "not signed: key {} ({}) is not in the trust file {}; the executor would ignore its signature",
            key.name(),
            key.public().fingerprint(),
            trust.path.display()
        )));
    };
    // The files must not have changed while the signer was reading.
    let (_, again, _) = current_status(&a.config, &a.trust)?;
    if again != manifest {
        return Err(refuse(
            "not signed: the policy or a tool file changed while you were reviewing it; run `airlock policy sign` again",
        ));
    }
    let sig = PolicySignature::sign(&key, &manifest, now_ms());
    let path = signature_path(&c.policy.path);
    write_signature(&path, &sig).map_err(anyhow::Error::msg)?;
    let msg = format!(
        "policy signed by {} ({}); manifest {}; signature written to {}",
        trusted.name,
        key.public().fingerprint(),
        &sig.manifest_hash[..12],
        path.display()
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        t.say(&format!("{msg}\n"))?;
    }
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}
