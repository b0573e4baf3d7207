//! The snapshot backups that share one shape ([`ebs`](super::ebs), [`rds`](super::rds)): a
//! snapshot in the resource's region, waited for, then a copy in the backup region, waited for.
//! Each step is recorded once it is started, and found again after a crash rather than taken
//! twice.

use std::future::Future;

use serde_json::json;

use super::{NO_BACKUP_REGION, Refuse, Runner, done, in_region};
use crate::policy::Environment;
use crate::queue::{Phase, Request};

/// What a snapshot step works on: the runner, the request, and the environment (its region
/// is where the step's request is sent).
pub struct Job<'a, R> {
    pub r: &'a R,
    pub req: &'a Request,
    pub env: &'a Environment,
}

impl<R> Clone for Job<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Job<'_, R> {}

/// A snapshot started (or found): its id.
pub type Started = Result<String, Refuse>;

/// One kind of snapshot backup.
pub trait Kind {
    /// Starts (or finds) the backup in the job's region; returns its id.
    fn start<R: Runner>(&self, j: Job<'_, R>) -> impl Future<Output = Started>;
    /// Starts (or finds) the copy of backup `id` in `to`'s region; returns the copy's id.
    fn copy<R: Runner>(
        &self,
        j: Job<'_, R>,
        to: &Environment,
        id: &str,
    ) -> impl Future<Output = Started>;
    /// Waits until snapshot `id` in the job's region is usable.
    fn wait<R: Runner>(&self, j: Job<'_, R>, id: &str) -> impl Future<Output = Result<(), Refuse>>;
    /// What to wait for in the backup region: the copy's id, or the backup's name where the
    /// copy keeps it (a DB snapshot).
    fn copy_wait_id<'a>(&self, copy_id: &'a str, backup_id: &'a str) -> &'a str;
}

/// The snapshot, waited for, and its copy in the backup region where the policy names one.
pub async fn run<K: Kind, R: Runner>(
    kind: &K,
    r: &R,
    req: &mut Request,
    env: &Environment,
) -> Result<(), Refuse> {
    let backup_id = match req.backup_id.clone() {
        Some(id) => id,
        None => {
            let id = kind.start(Job { r, req, env }).await?;
            r.phase(Phase::BackupStarted, json!({"backup_id": id}))
                .await?;
            req.backup_id = Some(id.clone());
            id
        }
    };
    kind.wait(Job { r, req, env }, &backup_id).await?;
    match &env.backup_region {
        Some(dest) => {
            let dest_env = in_region(env, dest);
            let copy_id = match req.backup_copy_id.clone() {
                Some(id) => id,
                None => {
                    let id = kind
                        .copy(Job { r, req, env }, &dest_env, &backup_id)
                        .await?;
                    record_copy(r, req, &id, dest).await?;
                    id
                }
            };
            let there = Job {
                r,
                req,
                env: &dest_env,
            };
            kind.wait(there, kind.copy_wait_id(&copy_id, &backup_id))
                .await?;
        }
        None if env.require_isolated_backup => return Err(Refuse(NO_BACKUP_REGION.into())),
        None => {}
    }
    done(
        r,
        json!({"backup_id": req.backup_id, "backup_copy_id": req.backup_copy_id}),
    )
    .await
}

/// Records that the copy `id` was started in `dest`, so a restart waits for it.
pub async fn record_copy<R: Runner>(
    r: &R,
    req: &mut Request,
    id: &str,
    dest: &str,
) -> Result<(), Refuse> {
    r.phase(
        Phase::BackupCopyStarted,
        json!({"backup_copy_id": id, "region": dest}),
    )
    .await?;
    req.backup_copy_id = Some(id.to_string());
    Ok(())
}
