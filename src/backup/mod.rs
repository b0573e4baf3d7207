//! The backup a destructive tool declares, one file per kind. Each kind owns three things that
//! must agree: its plan in words (what the agent and the approver are told), its grants (what
//! `airlock iam` gives the executor role) and its steps (what the executor sends, recorded as
//! it goes so a crash resumes instead of backing up twice).
//!
//! - [`ebs`]: an EBS snapshot of a volume, copied to the backup region.
//! - [`snapshot_copy`]: a copy of the EBS snapshot being deleted.
//! - [`rds`]: a final DB snapshot of an RDS instance, copied to the backup region.
//! - [`logs`]: every event of a log group exported to S3.
//! - [`snapshot`]: the snapshot-then-copy flow `ebs` and `rds` share.
//!
//! The steps run through a [`Runner`], which the executor implements: one scoped AWS request,
//! a recorded phase, a progress line, a crash point.

pub mod ebs;
pub mod logs;
pub mod rds;
pub mod snapshot;
pub mod snapshot_copy;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::aws::AwsError;
use crate::catalogue::{AwsSpec, BackupKind, ToolSpec};
use crate::policy::Environment;
use crate::queue::{Phase, Request};

/// How long to wait for a backup to complete.
pub const BACKUP_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// Why a request must not run (nothing was deleted); the message is recorded as its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse(pub String);

/// A point where a crash is simulated in tests (see `executor::fault_point`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A backup request (snapshot, copy, export) was accepted, not yet recorded.
    AfterBackupRequest,
    /// The backup is recorded as done; the action is not yet sent.
    AfterBackup,
    /// The action succeeded; its outcome is not yet recorded.
    AfterDelete,
}

impl CrashPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::AfterBackupRequest => "after-backup-request",
            CrashPoint::AfterBackup => "after-backup",
            CrashPoint::AfterDelete => "after-delete",
        }
    }
}

/// What a backup's steps need from the executor that runs them, for one request.
pub trait Runner {
    /// One AWS request in `env`'s region under a session policy of exactly `actions` on
    /// `resources`, with the executor's credential. Returns the decoded answer.
    fn aws(
        &self,
        env: &Environment,
        spec: AwsSpec,
        actions: Vec<String>,
        resources: Vec<String>,
        params: Value,
    ) -> impl Future<Output = Result<Value, AwsError>>;
    /// Record that the request reached `phase` (with the ids in `detail`).
    fn phase(&self, phase: Phase, detail: Value) -> impl Future<Output = Result<(), Refuse>>;
    /// A progress line for the person watching.
    fn say(&self, line: String);
    /// How long to wait between two looks at a backup in progress.
    fn poll(&self) -> Duration;
    /// A point where tests simulate a crash.
    fn crash_point(&self, point: CrashPoint) -> impl Future<Output = ()>;
}

/// One request of a backup step, under a session policy of exactly `iam_action` on
/// `resources`.
async fn send<R: Runner>(
    r: &R,
    env: &Environment,
    spec: AwsSpec,
    iam_action: &str,
    resources: Vec<String>,
    params: Value,
) -> Result<Value, AwsError> {
    r.aws(env, spec, vec![iam_action.into()], resources, params)
        .await
}

/// Record that the backup is complete (with its ids in `detail`); then comes the action.
async fn done<R: Runner>(r: &R, detail: Value) -> Result<(), Refuse> {
    r.phase(Phase::BackupDone, detail).await?;
    r.crash_point(CrashPoint::AfterBackup).await;
    Ok(())
}

/// Take the backup `kind` declares for `req` in `env`, waiting until it is complete. On
/// success `req` carries the backup ids; on refusal nothing was deleted.
pub async fn run<R: Runner>(
    kind: BackupKind,
    r: &R,
    req: &mut Request,
    env: &Environment,
) -> Result<(), Refuse> {
    if kind != BackupKind::None && req.phase() >= Phase::BackupDone {
        r.say(format!(
            "{}: backup {} already complete (resuming)",
            req.id,
            req.backup_id
                .as_deref()
                .or(req.backup_copy_id.as_deref())
                .unwrap_or("?")
        ));
        return Ok(());
    }
    match kind {
        BackupKind::EbsSnapshot => snapshot::run(&ebs::Ebs, r, req, env).await,
        BackupKind::RdsSnapshot => snapshot::run(&rds::Rds, r, req, env).await,
        BackupKind::SnapshotCopy => snapshot_copy::run(r, req, env).await,
        BackupKind::LogsExport => logs::run(r, req, env).await,
        BackupKind::None => Ok(()),
    }
}

/// The backup a request will get, before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupPlan {
    /// The tool's declared kind (`ebs_snapshot`, `snapshot_copy`, `rds_snapshot`,
    /// `logs_export`, `none`).
    pub kind: &'static str,
    /// What is taken and where, as a noun phrase ("EBS snapshot in us-east-1, copied to
    /// us-west-2"); with `kind = "none"`, "none".
    pub summary: String,
    /// Where the copy that survives the deletion is kept: a region, or an `s3://` location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_in: Option<String>,
    /// `kind = "none"`: why the tool file says no backup is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub none_reason: Option<String>,
    /// Why the executor will refuse to run this request as the policy stands (nothing is then
    /// deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::EbsSnapshot => "ebs_snapshot",
            BackupKind::SnapshotCopy => "snapshot_copy",
            BackupKind::RdsSnapshot => "rds_snapshot",
            BackupKind::LogsExport => "logs_export",
            BackupKind::None => "none",
        }
    }
}

const NO_ISOLATION: &str = "same region: no isolated copy configured";

/// A plan that keeps its copy in the backup region, or (and says so) in the resource's region.
/// `summary` gets the backup region, or `None` when there is none.
fn regional_plan(
    kind: BackupKind,
    env: &Environment,
    summary: impl Fn(Option<&str>) -> String,
) -> BackupPlan {
    let kept = env
        .backup_region
        .clone()
        .unwrap_or_else(|| env.region.clone());
    BackupPlan {
        kind: kind.as_str(),
        summary: summary(env.backup_region.as_deref()),
        kept_in: Some(kept),
        none_reason: None,
        refused: isolation_missing(env),
    }
}

/// `WHAT in REGION, copied to BACKUP_REGION`, or `WHAT in REGION (no isolated copy)`.
fn copied_summary(what: &str, env: &Environment, to: Option<&str>) -> String {
    match to {
        Some(r) => format!("{what} in {}, copied to {r}", env.region),
        None => format!("{what} in {} ({NO_ISOLATION})", env.region),
    }
}

/// Why a request cannot run where isolation is required but no backup region is named
/// (policy.toml validation already refuses this; the executor would refuse too).
fn isolation_missing(env: &Environment) -> Option<String> {
    (env.require_isolated_backup && env.backup_region.is_none()).then(|| {
        format!(
            "environment `{}` requires an isolated backup but names no backup_region",
            env.name
        )
    })
}

/// The backup the executor will take for request `request_id` of `tool` in `env`. `None` for a
/// tool without `[backup]` (only non-destructive tools).
pub fn plan(tool: &ToolSpec, env: &Environment, request_id: &str) -> Option<BackupPlan> {
    let kind = tool.backup?;
    Some(match kind {
        BackupKind::EbsSnapshot => {
            regional_plan(kind, env, |to| copied_summary("EBS snapshot", env, to))
        }
        BackupKind::SnapshotCopy => regional_plan(kind, env, |to| match to {
            Some(r) => format!("a copy of the snapshot in {r}"),
            None => format!("a copy of the snapshot in {} ({NO_ISOLATION})", env.region),
        }),
        BackupKind::RdsSnapshot => {
            let what = format!("final DB snapshot {}", rds::backup_name(request_id));
            regional_plan(kind, env, |to| copied_summary(&what, env, to))
        }
        BackupKind::LogsExport => logs::plan(env, request_id),
        BackupKind::None => BackupPlan {
            kind: kind.as_str(),
            summary: "none".into(),
            kept_in: None,
            none_reason: Some(
                tool.backup_note
                    .clone()
                    .unwrap_or_else(|| "the tool file gives no reason".into()),
            ),
            refused: None,
        },
    })
}

impl BackupPlan {
    /// For the agent, after its request is queued: what runs once the request is approved and
    /// the cooldown is over.
    pub fn for_agent(&self) -> String {
        if let Some(why) = &self.refused {
            return format!(
                "As the policy stands the executor will refuse this request and delete nothing: {why}. A human has to change policy.toml first; tell the person you work with."
            );
        }
        match &self.none_reason {
            Some(reason) => format!(
                "Then the executor performs the deletion under a credential scoped to this one resource. It takes no backup first: the tool declares none, because {reason}."
            ),
            None => format!(
                "Then the executor takes the backup this tool declares and waits until it is complete ({}); only then does it perform the deletion, under a credential scoped to this one resource. If the backup fails, nothing is deleted.",
                self.summary
            ),
        }
    }

    /// For a person (`airlock requests show`): one line.
    pub fn for_person(&self) -> String {
        if let Some(why) = &self.refused {
            return format!("none possible: {why}, so the executor will refuse");
        }
        match &self.none_reason {
            Some(reason) => format!("none (the tool declares no backup: {reason})"),
            None => format!("{}, before the action", self.summary),
        }
    }
}

/// One grant the executor role needs for a backup: these actions on these resources, when the
/// request is sent to one of these regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupGrant {
    /// A statement id for the generated IAM document (letters and digits).
    pub sid: &'static str,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub regions: Vec<String>,
}

/// What the executor role must be allowed for a backup of `kind` in `env`, where `resources`
/// are the ARNs (or ARN patterns) of what is backed up: exactly what the kind's steps send.
/// `airlock iam` writes these into the executor's permissions.
pub fn grants(kind: BackupKind, env: &Environment, resources: &[String]) -> Vec<BackupGrant> {
    match kind {
        BackupKind::None => Vec::new(),
        BackupKind::EbsSnapshot => ebs::grants(env, resources),
        BackupKind::SnapshotCopy => snapshot_copy::grants(env, resources),
        BackupKind::LogsExport => logs::grants(env, resources),
        BackupKind::RdsSnapshot => rds::grants(env, resources),
    }
}

/// The regions a grant applies in: the resource's, and the backup region when there is one.
fn both_regions(env: &Environment) -> Vec<String> {
    std::iter::once(env.region.clone())
        .chain(env.backup_region.clone())
        .collect()
}

/// How to follow one backup in progress: the request that looks at it, and where its answer
/// says how it is going.
pub struct Follow {
    /// Names it in messages (`backup snap-1`, `export 4f2a`).
    pub what: String,
    /// Where it is, for the progress line (`in us-east-1`, `to s3://bucket/prefix`).
    pub place: String,
    pub spec: AwsSpec,
    pub iam_action: &'static str,
    pub resources: Vec<String>,
    pub params: Value,
    /// The status in the answer, and anything to add to the progress line.
    pub status: fn(&Value) -> (String, String),
    pub done: &'static [&'static str],
    pub failed: &'static [&'static str],
}

/// Follows a backup in progress: looks every poll interval, says each new status line, and
/// returns once it is done. A backup that fails, or is not done within [`BACKUP_TIMEOUT`],
/// refuses the request (nothing is deleted).
pub async fn follow<R: Runner>(
    r: &R,
    env: &Environment,
    req: &Request,
    f: Follow,
) -> Result<(), Refuse> {
    let started = Instant::now();
    let mut last = String::new();
    let what = &f.what;
    loop {
        let (spec, resources) = (f.spec.clone(), f.resources.clone());
        let doc = send(r, env, spec, f.iam_action, resources, f.params.clone())
            .await
            .map_err(|e| Refuse(format!("could not follow {what}: {e}")))?;
        let (status, extra) = (f.status)(&doc);
        let line = format!("{}: {what} {}: {status}{extra}", req.id, f.place);
        if line != last {
            r.say(line.clone());
            last = line;
        }
        if f.done.contains(&status.as_str()) {
            return Ok(());
        }
        if status == "unknown" || f.failed.contains(&status.as_str()) {
            return Err(Refuse(format!("{what} is `{status}`; nothing was deleted")));
        }
        if started.elapsed() > BACKUP_TIMEOUT {
            return Err(Refuse(format!(
                "{what} did not complete in {}; nothing was deleted",
                humantime::format_duration(BACKUP_TIMEOUT)
            )));
        }
        tokio::time::sleep(r.poll()).await;
    }
}

/// Why a backup is refused where the policy requires isolation but names no backup region.
pub const NO_BACKUP_REGION: &str =
    "the policy requires an isolated backup but names no backup_region; nothing was deleted";

/// `env` with requests sent to `region` instead (a copy in the backup region).
fn in_region(env: &Environment, region: &str) -> Environment {
    Environment {
        region: region.to_string(),
        ..env.clone()
    }
}

#[cfg(test)]
mod tests;
