//! The snapshot backups that share one shape ([`ebs`](super::ebs), [`rds`](super::rds)): a
//! snapshot in the resource's region, waited for, then a copy in the backup region, waited for.
//! Each step is recorded once it is started, and found again after a crash rather than taken
//! twice.

use std::future::Future;

use serde_json::json;

use super::{CrashPoint, NO_BACKUP_REGION, Refuse, Runner, in_region};
use crate::policy::Environment;
use crate::queue::{Phase, Request};

/// One kind of snapshot backup.
pub trait Kind {
    /// Starts (or finds) the backup in `env`'s region; returns its id.
    fn start<R: Runner>(
        &self,
        r: &R,
        req: &Request,
        env: &Environment,
    ) -> impl Future<Output = Result<String, Refuse>>;
    /// Starts (or finds) the copy of `backup_id` in `dest`'s region; returns the copy's id.
    fn start_copy<R: Runner>(
        &self,
        r: &R,
        req: &Request,
        env: &Environment,
        dest: &Environment,
        backup_id: &str,
    ) -> impl Future<Output = Result<String, Refuse>>;
    /// Waits until snapshot `id` in `env`'s region is usable.
    fn wait<R: Runner>(
        &self,
        r: &R,
        env: &Environment,
        id: &str,
        req: &Request,
    ) -> impl Future<Output = Result<(), Refuse>>;
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
            let id = kind.start(r, req, env).await?;
            r.phase(Phase::BackupStarted, json!({"backup_id": id}))
                .await?;
            req.backup_id = Some(id.clone());
            id
        }
    };
    kind.wait(r, env, &backup_id, req).await?;
    match &env.backup_region {
        Some(dest) => {
            let dest_env = in_region(env, dest);
            let copy_id = match req.backup_copy_id.clone() {
                Some(id) => id,
                None => {
                    let id = kind.start_copy(r, req, env, &dest_env, &backup_id).await?;
                    record_copy(r, req, &id, dest).await?;
                    id
                }
            };
            kind.wait(r, &dest_env, kind.copy_wait_id(&copy_id, &backup_id), req)
                .await?;
        }
        None if env.require_isolated_backup => return Err(Refuse(NO_BACKUP_REGION.into())),
        None => {}
    }
    r.phase(
        Phase::BackupDone,
        json!({"backup_id": req.backup_id, "backup_copy_id": req.backup_copy_id}),
    )
    .await?;
    r.crash_point(CrashPoint::AfterBackup).await;
    Ok(())
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
