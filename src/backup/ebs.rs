//! `ebs_snapshot`: an EBS snapshot of the volume (CreateSnapshot in its region), waited for,
//! then copied to the backup region (CopySnapshot called there). Snapshots are found again by
//! their description, which names the request, so a restart never takes a second one.

use serde_json::{Value, json};

use super::snapshot::Kind;
use super::{BackupGrant, BackupState, CrashPoint, Refuse, Runner, both_regions, wait_for};
use crate::aws::AwsError;
use crate::catalogue::{AwsSpec, Protocol};
use crate::policy::Environment;
use crate::queue::Request;

const EC2_VERSION: &str = "2016-11-15";
/// The IAM actions of an EBS-snapshot backup: CreateSnapshot in the resource's region,
/// DescribeSnapshots to follow it (in both regions), CopySnapshot called in the backup region.
pub const CREATE_SNAPSHOT: &str = "ec2:CreateSnapshot";
pub const DESCRIBE_SNAPSHOTS: &str = "ec2:DescribeSnapshots";
pub const COPY_SNAPSHOT: &str = "ec2:CopySnapshot";

/// The ARN pattern of every snapshot in `region` (a new snapshot's id is not known before).
pub fn snapshots_in(env: &Environment, region: &str) -> String {
    format!("arn:{}:ec2:{region}::snapshot/*", env.partition)
}

pub fn grants(env: &Environment, resources: &[String]) -> Vec<BackupGrant> {
    let here = snapshots_in(env, &env.region);
    let mut grants = vec![
        BackupGrant {
            sid: "BackupCreateSnapshot",
            actions: vec![CREATE_SNAPSHOT.into()],
            resources: resources.iter().cloned().chain([here.clone()]).collect(),
            regions: vec![env.region.clone()],
        },
        BackupGrant {
            sid: "BackupFollowSnapshot",
            actions: vec![DESCRIBE_SNAPSHOTS.into()],
            resources: vec!["*".into()],
            regions: both_regions(env),
        },
    ];
    if let Some(dest) = &env.backup_region {
        grants.push(BackupGrant {
            sid: "BackupCopySnapshot",
            actions: vec![COPY_SNAPSHOT.into()],
            resources: vec![here, snapshots_in(env, dest)],
            regions: vec![dest.clone()],
        });
    }
    grants
}

/// One EC2 request of a backup, under a session policy of exactly `action` on `resources`.
pub async fn ec2<R: Runner>(
    r: &R,
    env: &Environment,
    action: &str,
    iam_action: &str,
    resources: Vec<String>,
    params: Value,
) -> Result<Value, AwsError> {
    let spec = AwsSpec::step("ec2", Protocol::Ec2, action, EC2_VERSION);
    r.aws(env, spec, vec![iam_action.into()], resources, params)
        .await
}

/// An EBS snapshot request (CreateSnapshot or CopySnapshot).
pub struct SnapshotAsk {
    pub action: &'static str,
    pub iam_action: &'static str,
    pub resources: Vec<String>,
    pub params: Value,
    /// What the refusal says when the request fails ("the backup could not be started").
    pub failure: String,
}

/// Sends `ask` to `env`'s region; returns the new snapshot's id. The request is not yet
/// recorded when it is accepted (the `after-backup-request` crash point).
pub async fn request_snapshot<R: Runner>(
    r: &R,
    env: &Environment,
    ask: SnapshotAsk,
) -> Result<String, Refuse> {
    let doc = ec2(
        r,
        env,
        ask.action,
        ask.iam_action,
        ask.resources,
        ask.params,
    )
    .await
    .map_err(|e| Refuse(format!("{}, so nothing was deleted: {e}", ask.failure)))?;
    r.crash_point(CrashPoint::AfterBackupRequest).await;
    doc["snapshotId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Refuse(format!("{} returned no snapshot id", ask.action)))
}

/// This account's snapshot in `env`'s region with exactly this description (which names the
/// request): a backup this request started before a crash, before it was recorded.
pub async fn find_snapshot<R: Runner>(
    r: &R,
    env: &Environment,
    description: &str,
    req: &Request,
) -> Result<Option<String>, Refuse> {
    let found = ec2(
        r,
        env,
        "DescribeSnapshots",
        DESCRIBE_SNAPSHOTS,
        vec!["*".into()],
        json!({"Owner": ["self"], "Filter": [{"Name": "description", "Value": [description]}]}),
    )
    .await
    .map_err(|e| {
        Refuse(format!(
            "could not look for this request's earlier backup in {}, so nothing was deleted: {e}",
            env.region
        ))
    })?;
    let id = found["snapshotSet"][0]["snapshotId"]
        .as_str()
        .map(str::to_string);
    if let Some(id) = &id {
        r.say(format!(
            "{}: found this request's backup {id} in {} (resuming)",
            req.id, env.region
        ));
    }
    Ok(id)
}

/// Waits until EBS snapshot `snap` in `env`'s region is completed.
pub async fn wait_snapshot<R: Runner>(
    r: &R,
    env: &Environment,
    snap: &str,
    req: &Request,
) -> Result<(), Refuse> {
    let what = format!("backup {snap}");
    wait_for(r, &what, async || {
        let doc = ec2(
            r,
            env,
            "DescribeSnapshots",
            DESCRIBE_SNAPSHOTS,
            vec!["*".into()],
            json!({"SnapshotId": [snap]}),
        )
        .await
        .map_err(|e| Refuse(format!("could not follow {what}: {e}")))?;
        let item = &doc["snapshotSet"][0];
        let status = item["status"].as_str().unwrap_or("unknown").to_string();
        let percent = item["progress"].as_str().unwrap_or("");
        let line = format!("{}: {what} in {}: {status} {percent}", req.id, env.region);
        let progress = match status.as_str() {
            "completed" => BackupState::Done,
            "error" | "recoverable" | "unknown" => BackupState::Failed(status),
            _ => BackupState::Running,
        };
        Ok((line, progress))
    })
    .await
}

/// The EBS snapshot of a volume.
pub struct Ebs;

impl Kind for Ebs {
    async fn start<R: Runner>(
        &self,
        r: &R,
        req: &Request,
        env: &Environment,
    ) -> Result<String, Refuse> {
        let description = format!(
            "airlock backup of {} before request {}",
            req.resource_id, req.id
        );
        if let Some(id) = find_snapshot(r, env, &description, req).await? {
            return Ok(id);
        }
        let ask = SnapshotAsk {
            action: "CreateSnapshot",
            iam_action: CREATE_SNAPSHOT,
            resources: vec![req.resource_arn.clone(), snapshots_in(env, &env.region)],
            params: json!({"VolumeId": req.resource_id, "Description": description}),
            failure: "the backup could not be started".into(),
        };
        request_snapshot(r, env, ask).await
    }

    async fn start_copy<R: Runner>(
        &self,
        r: &R,
        req: &Request,
        env: &Environment,
        dest: &Environment,
        backup_id: &str,
    ) -> Result<String, Refuse> {
        let description = format!(
            "airlock isolated copy of {backup_id} ({}) for request {}",
            req.resource_id, req.id
        );
        if let Some(id) = find_snapshot(r, dest, &description, req).await? {
            return Ok(id);
        }
        let p = &env.partition;
        let ask = SnapshotAsk {
            action: "CopySnapshot",
            iam_action: COPY_SNAPSHOT,
            resources: vec![
                format!("arn:{p}:ec2:{}::snapshot/{backup_id}", env.region),
                snapshots_in(env, &dest.region),
            ],
            params: json!({"SourceRegion": env.region, "SourceSnapshotId": backup_id, "Description": description}),
            failure: format!("the backup could not be copied to {}", dest.region),
        };
        request_snapshot(r, dest, ask).await
    }

    async fn wait<R: Runner>(
        &self,
        r: &R,
        env: &Environment,
        id: &str,
        req: &Request,
    ) -> Result<(), Refuse> {
        wait_snapshot(r, env, id, req).await
    }

    fn copy_wait_id<'a>(&self, copy_id: &'a str, _backup_id: &'a str) -> &'a str {
        copy_id
    }
}
