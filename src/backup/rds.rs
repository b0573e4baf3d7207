//! `rds_snapshot`: the instance's final DB snapshot (CreateDBSnapshot), named after the
//! request so a restart finds the one it already started, waited for, then copied to the
//! backup region under the same name (CopyDBSnapshot called there).

use serde_json::{Value, json};

use super::snapshot::{Job, Kind, Started};
use super::{BackupGrant, CrashPoint, Follow, Refuse, Runner, both_regions, follow, send};
use crate::aws::AwsError;
use crate::catalogue::{AwsSpec, Protocol};
use crate::policy::Environment;

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

/// An RDS request of a backup.
fn rds(action: &str) -> AwsSpec {
    AwsSpec::step("rds", Protocol::Query, action, RDS_VERSION)
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
    async fn start<R: Runner>(&self, j: Job<'_, R>) -> Started {
        let Job { r, req, env } = j;
        let name = backup_name(&req.id);
        let here = snapshot_arn(env, &env.region, &name);
        let answer = send(
            r,
            env,
            rds("CreateDBSnapshot"),
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
    async fn copy<R: Runner>(&self, j: Job<'_, R>, dest: &Environment, name: &str) -> Started {
        let Job { r, req, env } = j;
        let to = &dest.region;
        let here = snapshot_arn(env, &env.region, name);
        let there = snapshot_arn(env, to, name);
        let answer = send(r, dest, rds("CopyDBSnapshot"),
            COPY_SNAPSHOT,
            vec![here.clone(), there.clone()],
            json!({"SourceDBSnapshotIdentifier": here, "TargetDBSnapshotIdentifier": name, "CopyTags": true}),
        )
        .await;
        let found = format!("{}: found this request's copy in {to} (resuming)", req.id);
        sent(r, answer, found, &format!("copied to {to}")).await?;
        Ok(there)
    }

    async fn wait<R: Runner>(&self, j: Job<'_, R>, name: &str) -> Result<(), Refuse> {
        let f = Follow {
            what: format!("backup {name}"),
            place: format!("in {}", j.env.region),
            spec: rds("DescribeDBSnapshots"),
            iam_action: DESCRIBE_SNAPSHOTS,
            resources: vec![snapshot_arn(j.env, &j.env.region, name)],
            params: json!({"DBSnapshotIdentifier": name}),
            status: |doc| {
                let snaps = &doc["DescribeDBSnapshotsResult"]["DBSnapshots"]["DBSnapshot"];
                let item = if snaps.is_array() { &snaps[0] } else { snaps };
                let status = item["Status"].as_str().unwrap_or("unknown");
                (status.to_string(), String::new())
            },
            done: &["available"],
            failed: &["failed", "error", "incompatible-restore"],
        };
        follow(j.r, j.env, j.req, f).await
    }

    /// A DB snapshot copy keeps its name in the backup region.
    fn copy_wait_id<'a>(&self, _copy_id: &'a str, backup_id: &'a str) -> &'a str {
        backup_id
    }
}
