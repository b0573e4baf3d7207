//! `rds_snapshot`: the instance's final DB snapshot (CreateDBSnapshot), named after the
//! request so a restart finds the one it already started, waited for, then copied to the
//! backup region under the same name (CopyDBSnapshot called there).

use serde_json::{Value, json};

use super::snapshot::Kind;
use super::{BackupGrant, BackupState, CrashPoint, Refuse, Runner, both_regions, wait_for};
use crate::aws::AwsError;
use crate::catalogue::{AwsSpec, Protocol};
use crate::policy::Environment;
use crate::queue::Request;

const RDS_VERSION: &str = "2014-10-31";
/// The IAM actions of an RDS snapshot backup: CreateDBSnapshot on the instance and the new
/// snapshot, DescribeDBSnapshots to follow it, CopyDBSnapshot called in the backup region.
pub const CREATE_SNAPSHOT: &str = "rds:CreateDBSnapshot";
pub const DESCRIBE_SNAPSHOTS: &str = "rds:DescribeDBSnapshots";
pub const COPY_SNAPSHOT: &str = "rds:CopyDBSnapshot";
/// Backup DB snapshots are named after the request (`airlock-r-0123456789ab`).
pub const BACKUP_PREFIX: &str = "airlock-";

/// The name of request `request_id`'s final DB snapshot.
pub fn backup_name(request_id: &str) -> String {
    format!("{BACKUP_PREFIX}{request_id}")
}

/// The ARN of DB snapshot `name` in `region` of `env`'s account.
pub fn snapshot_arn(env: &Environment, region: &str, name: &str) -> String {
    format!(
        "arn:{}:rds:{region}:{}:snapshot:{name}",
        env.partition, env.account
    )
}

pub fn grants(env: &Environment, resources: &[String]) -> Vec<BackupGrant> {
    let snap = |region: &str| snapshot_arn(env, region, &format!("{BACKUP_PREFIX}*"));
    let mut grants = vec![
        BackupGrant {
            sid: "BackupCreateDbSnapshot",
            actions: vec![CREATE_SNAPSHOT.into()],
            resources: resources
                .iter()
                .cloned()
                .chain([snap(&env.region)])
                .collect(),
            regions: vec![env.region.clone()],
        },
        BackupGrant {
            sid: "BackupFollowDbSnapshot",
            actions: vec![DESCRIBE_SNAPSHOTS.into()],
            resources: std::iter::once(snap(&env.region))
                .chain(env.backup_region.as_deref().map(snap))
                .collect(),
            regions: both_regions(env),
        },
    ];
    if let Some(dest) = &env.backup_region {
        grants.push(BackupGrant {
            sid: "BackupCopyDbSnapshot",
            actions: vec![COPY_SNAPSHOT.into()],
            resources: vec![snap(&env.region), snap(dest)],
            regions: vec![dest.clone()],
        });
    }
    grants
}

async fn rds<R: Runner>(
    r: &R,
    env: &Environment,
    action: &str,
    iam_action: &str,
    resources: Vec<String>,
    params: Value,
) -> Result<Value, AwsError> {
    let spec = AwsSpec::step("rds", Protocol::Query, action, RDS_VERSION);
    r.aws(env, spec, vec![iam_action.into()], resources, params)
        .await
}

/// The outcome of a request for a DB snapshot named after this request.
/// `DBSnapshotAlreadyExists` means this request started it before a crash: it is found, not
/// taken twice.
async fn sent<R: Runner>(
    r: &R,
    sent: Result<Value, AwsError>,
    found: String,
    what: &str,
) -> Result<(), Refuse> {
    match sent {
        Ok(_) => r.crash_point(CrashPoint::AfterBackupRequest).await,
        Err(AwsError::Service { code, .. }) if code == "DBSnapshotAlreadyExists" => r.say(found),
        Err(e) => {
            return Err(Refuse(format!(
                "the final snapshot could not be {what}, so nothing was deleted: {e}"
            )));
        }
    }
    Ok(())
}

/// The final DB snapshot of an RDS instance.
pub struct Rds;

impl Kind for Rds {
    async fn start<R: Runner>(
        &self,
        r: &R,
        req: &Request,
        env: &Environment,
    ) -> Result<String, Refuse> {
        let name = backup_name(&req.id);
        let here = snapshot_arn(env, &env.region, &name);
        let answer = rds(
            r,
            env,
            "CreateDBSnapshot",
            CREATE_SNAPSHOT,
            vec![req.resource_arn.clone(), here],
            json!({"DBInstanceIdentifier": req.resource_id, "DBSnapshotIdentifier": name}),
        )
        .await;
        let found = format!(
            "{}: found this request's snapshot {name} (resuming)",
            req.id
        );
        sent(r, answer, found, "started").await?;
        Ok(name)
    }

    /// The copy keeps the snapshot's name; returns the copy's ARN.
    async fn start_copy<R: Runner>(
        &self,
        r: &R,
        req: &Request,
        env: &Environment,
        dest: &Environment,
        name: &str,
    ) -> Result<String, Refuse> {
        let to = &dest.region;
        let here = snapshot_arn(env, &env.region, name);
        let there = snapshot_arn(env, to, name);
        let answer = rds(
            r,
            dest,
            "CopyDBSnapshot",
            COPY_SNAPSHOT,
            vec![here.clone(), there.clone()],
            json!({"SourceDBSnapshotIdentifier": here, "TargetDBSnapshotIdentifier": name, "CopyTags": true}),
        )
        .await;
        let found = format!("{}: found this request's copy in {to} (resuming)", req.id);
        sent(r, answer, found, &format!("copied to {to}")).await?;
        Ok(there)
    }

    async fn wait<R: Runner>(
        &self,
        r: &R,
        env: &Environment,
        name: &str,
        req: &Request,
    ) -> Result<(), Refuse> {
        let what = format!("backup {name}");
        wait_for(r, &what, async || {
            let doc = rds(
                r,
                env,
                "DescribeDBSnapshots",
                DESCRIBE_SNAPSHOTS,
                vec![snapshot_arn(env, &env.region, name)],
                json!({"DBSnapshotIdentifier": name}),
            )
            .await
            .map_err(|e| Refuse(format!("could not follow {what}: {e}")))?;
            let snaps = &doc["DescribeDBSnapshotsResult"]["DBSnapshots"]["DBSnapshot"];
            let item = if snaps.is_array() { &snaps[0] } else { snaps };
            let status = item["Status"].as_str().unwrap_or("unknown").to_string();
            let line = format!("{}: {what} in {}: {status}", req.id, env.region);
            let progress = match status.as_str() {
                "available" => BackupState::Done,
                "failed" | "error" | "incompatible-restore" | "unknown" => {
                    BackupState::Failed(status)
                }
                _ => BackupState::Running,
            };
            Ok((line, progress))
        })
        .await
    }

    /// A DB snapshot copy keeps its name in the backup region.
    fn copy_wait_id<'a>(&self, _copy_id: &'a str, backup_id: &'a str) -> &'a str {
        backup_id
    }
}
