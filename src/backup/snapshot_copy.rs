//! `snapshot_copy`: before an EBS snapshot is deleted, a copy of it in the backup region (or in
//! its own region when none is set and the policy does not require isolation), waited for.

use serde_json::json;

use super::ebs::{self, COPY_SNAPSHOT, DESCRIBE_SNAPSHOTS, SnapshotAsk, snapshots_in};
use super::snapshot::record_copy;
use super::{BackupGrant, NO_BACKUP_REGION, Refuse, Runner, done, in_region};
use crate::policy::Environment;
use crate::queue::Request;

/// The region the copy goes to.
fn destination(env: &Environment) -> String {
    env.backup_region
        .clone()
        .unwrap_or_else(|| env.region.clone())
}

pub fn grants(env: &Environment, resources: &[String]) -> Vec<BackupGrant> {
    let dest = destination(env);
    vec![
        BackupGrant {
            sid: "BackupCopyEbsSnapshotOut",
            actions: vec![COPY_SNAPSHOT.into()],
            resources: resources
                .iter()
                .cloned()
                .chain([snapshots_in(env, &dest)])
                .collect(),
            regions: vec![dest.clone()],
        },
        BackupGrant {
            sid: "BackupFollowEbsSnapshotCopy",
            actions: vec![DESCRIBE_SNAPSHOTS.into()],
            resources: vec!["*".into()],
            regions: vec![dest],
        },
    ]
}

pub async fn run<R: Runner>(r: &R, req: &mut Request, env: &Environment) -> Result<(), Refuse> {
    if env.backup_region.is_none() && env.require_isolated_backup {
        return Err(Refuse(NO_BACKUP_REGION.into()));
    }
    let dest = destination(env);
    let dest_env = in_region(env, &dest);
    let copy_id = match req.backup_copy_id.clone() {
        Some(id) => id,
        None => {
            let id = start(r, req, env, &dest_env).await?;
            record_copy(r, req, &id, &dest).await?;
            id
        }
    };
    ebs::wait_snapshot(r, &dest_env, &copy_id, req).await?;
    done(r, json!({"backup_copy_id": req.backup_copy_id})).await
}

/// The copy of the EBS snapshot being deleted, in `dest_env`'s region. The description names
/// the request, so a copy started before a crash (and not yet recorded) is found again rather
/// than made twice.
async fn start<R: Runner>(
    r: &R,
    req: &Request,
    env: &Environment,
    dest_env: &Environment,
) -> Result<String, Refuse> {
    let src = &req.resource_id;
    let description = format!("airlock copy of {src} before request {}", req.id);
    let dest = &dest_env.region;
    let ask = SnapshotAsk {
        action: "CopySnapshot",
        iam_action: COPY_SNAPSHOT,
        resources: vec![req.resource_arn.clone(), snapshots_in(env, dest)],
        params: json!({"SourceRegion": env.region, "SourceSnapshotId": src, "Description": description}),
        failure: format!("the snapshot could not be copied to {dest}"),
        description,
    };
    ebs::request_snapshot(r, dest_env, req, ask).await
}
