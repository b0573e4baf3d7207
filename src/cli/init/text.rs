//! The policy.toml `airlock init` writes: commented for someone who has never seen airlock.

use airlock::catalogue::{BackupKind, Catalogue, Risk};

use super::{EnvAnswer, Plan};

fn q(s: &str) -> String {
    toml::Value::String(s.into()).to_string()
}

fn list(items: &[&str]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The policy text: commented for someone who has never seen airlock.
pub(super) fn policy_text(plan: &Plan, catalogue: &Catalogue, iam_hint: &str) -> String {
    let mut s = String::new();
    s.push_str(
        "# airlock policy: which tools an AI agent may use, in which environment, on what.\n\
         # Written by `airlock init`. Reference: docs/policy.md. After every change run\n\
         # `airlock check --policy THIS_FILE`; every error is reported as policy.toml:LINE:COL.\n\
         # After adding tools or environments, regenerate the IAM documents the roles need:\n",
    );
    s.push_str(&format!("#   {iam_hint}\n"));
    s.push_str("version = 1\n\n[settings]\n");
    s.push_str("# Lifetime of each per-call credential (15m is the STS minimum, and the safest).\nsession_duration = \"15m\"\n");
    s.push_str("# A destructive request waits this long for a human's approval, then expires.\nrequest_ttl = \"24h\"\n");
    s.push_str("# An approved request must run within this long after its cooldown, or it expires.\nexecution_window = \"24h\"\n");
    if let Some(db) = &plan.db {
        s.push_str("# The queue of destructive requests, shared by `airlock serve` and `airlock executor`.\n");
        s.push_str(&format!("db = {}\n", q(db)));
    }
    for e in &plan.envs {
        environment(&mut s, e, plan);
    }
    s.push_str("\n[protected]\n# airlock refuses any call naming these, and marks them in listings.\nids = []\n");
    let tags: Vec<&str> = plan.protect_tags.iter().map(String::as_str).collect();
    s.push_str(&format!("tags = {}\n", list(&tags)));

    s.push_str(
        "\n# Rules. For each call: a matching \"deny\" wins, then \"approve\", then \"allow\"; a call\n\
         # that no rule matches is denied. `resources = [\"/app/staging/*\"]` narrows a rule to\n\
         # matching resource ids. New tools stay off until a rule names them.\n",
    );
    rules(&mut s, plan, catalogue);
    s
}

/// One `[environments.NAME]` table.
fn environment(s: &mut String, e: &EnvAnswer, plan: &Plan) {
    s.push_str(&format!("\n[environments.{}]\n", e.name));
    let what = if e.prod {
        " (production): the agent may read; nothing is deleted through airlock"
    } else {
        ": the agent may read; deletes need a human's approval"
    };
    s.push_str(&format!(
        "description = {}\n",
        q(&format!("{}{what}.", e.name))
    ));
    s.push_str(&format!(
        "account = {}\nregion = {}\n",
        q(&e.account),
        q(&e.region)
    ));
    s.push_str(
        "# Every agent call runs under this role, narrowed to the one call by a session policy.\n",
    );
    s.push_str("# The broker's credential (the standard AWS chain, or `profile = \"NAME\"`) may assume it\n# and nothing else.\n");
    s.push_str(&format!("agent_role = {}\n", q(&e.agent_role)));
    if let Some(pr) = &plan.profile {
        s.push_str(&format!("profile = {}\n", q(pr)));
    }
    if let Some(x) = &e.executor_role {
        s.push_str("# `airlock executor` assumes this role (with the operator's credential: the standard AWS\n# chain, or `executor_profile = \"NAME\"`) to run approved requests. The broker cannot.\n");
        s.push_str(&format!("executor_role = {}\n", q(x)));
        if let Some(pr) = &plan.executor_profile {
            s.push_str(&format!("executor_profile = {}\n", q(pr)));
        }
    }
    if let Some(b) = &e.backup_region {
        s.push_str("# Backups are copied to this region (another failure domain) before anything is deleted.\n");
        s.push_str(&format!(
            "backup_region = {}\nrequire_isolated_backup = true\n",
            q(b)
        ));
    }
    if let Some(b) = &e.log_export_bucket {
        s.push_str(
            "# Log groups are exported to this S3 bucket (same region) before they are deleted.\n",
        );
        s.push_str(&format!("log_export_bucket = {}\n", q(b)));
    }
    if let Some(ep) = &plan.endpoint {
        s.push_str("# A local AWS endpoint (e.g. moto); remove this line for real AWS.\n");
        s.push_str(&format!("endpoint = {}\n", q(ep)));
    }
}

/// The rules: local tools, read tools everywhere, destructive tools by approval outside
/// production, denied in production.
fn rules(s: &mut String, plan: &Plan, catalogue: &Catalogue) {
    let mut local = Vec::new();
    let mut read = Vec::new();
    let mut destructive = Vec::new();
    // Destructive tools whose backup is an export to the environment's log_export_bucket.
    let mut needs_bucket = Vec::new();
    for t in catalogue.tools() {
        match (t.risk, t.aws().is_some()) {
            (Risk::Destructive, _) if t.backup == Some(BackupKind::LogsExport) => {
                needs_bucket.push(t.name.as_str())
            }
            (Risk::Destructive, _) => destructive.push(t.name.as_str()),
            (Risk::Read, true) => read.push(t.name.as_str()),
            (_, false) => local.push(t.name.as_str()),
            // Write tools that call AWS: off until someone decides.
            (Risk::Write, true) => {}
        }
    }
    let all: Vec<&str> = plan.envs.iter().map(|e| e.name.as_str()).collect();
    let prod: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| e.prod)
        .map(|e| e.name.as_str())
        .collect();
    let nonprod: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| !e.prod)
        .map(|e| e.name.as_str())
        .collect();
    if !local.is_empty() {
        s.push_str(&format!(
            "\n# No AWS call: what the agent may do, and its own requests.\n[[rules]]\ntools = {}\ndecision = \"allow\"\n",
            list(&local)
        ));
    }
    if !read.is_empty() {
        rule(
            s,
            "# Read tools, everywhere.\n",
            &read,
            &all,
            "decision = \"allow\"\n",
        );
    }
    if !destructive.is_empty() && !nonprod.is_empty() {
        rule(
            s,
            "# Destructive tools outside production: one human approval, then a cooldown anyone can\n# cancel in; then `airlock executor` backs the resource up and runs the action.\n",
            &destructive,
            &nonprod,
            APPROVE,
        );
    }
    let with_bucket: Vec<&str> = plan
        .envs
        .iter()
        .filter(|e| !e.prod && e.log_export_bucket.is_some())
        .map(|e| e.name.as_str())
        .collect();
    let without: Vec<&str> = nonprod
        .iter()
        .copied()
        .filter(|n| !with_bucket.contains(n))
        .collect();
    if !needs_bucket.is_empty() && !with_bucket.is_empty() {
        rule(
            s,
            "# These export the log group to the environment's log_export_bucket first.\n",
            &needs_bucket,
            &with_bucket,
            APPROVE,
        );
    }
    if !needs_bucket.is_empty() && !without.is_empty() {
        s.push_str(&format!(
            "\n# Not enabled in {}: {} (the log group is exported to the environment's\n# `log_export_bucket` before it is deleted: set one, and add an \"approve\" rule to turn it on).\n",
            without.join(", "),
            needs_bucket.join(", ")
        ));
    }
    let all_destructive: Vec<&str> = {
        let mut v: Vec<&str> = destructive.iter().chain(&needs_bucket).copied().collect();
        v.sort();
        v
    };
    if !all_destructive.is_empty() && !prod.is_empty() {
        s.push_str(&format!(
            "\n[[rules]]\ntools = {}\nenvironments = {}\ndecision = \"deny\"\nreason = \"production is changed by the team's own change process, not by agents; ask a person\"\n",
            list(&all_destructive),
            list(&prod)
        ));
    }
}

/// One approval, then a cooldown anyone can cancel in.
const APPROVE: &str = "decision = \"approve\"\napprovers = 1\ncooldown = \"10m\"\n";

/// A `[[rules]]` entry for `tools` in `envs`, after `comment`, ending with `decision`.
fn rule(s: &mut String, comment: &str, tools: &[&str], envs: &[&str], decision: &str) {
    s.push_str(&format!(
        "\n{comment}[[rules]]\ntools = {}\nenvironments = {}\n{decision}",
        list(tools),
        list(envs)
    ));
}
