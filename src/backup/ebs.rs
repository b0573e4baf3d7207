//! `ebs_snapshot`: an EBS snapshot of the volume (CreateSnapshot in its region), waited for,
//! then copied to the backup region (CopySnapshot called there). Snapshots are found again by
//! their description, which names the request, so a restart never takes a second one.

use serde_json::{Value, json};

use super::snapshot::{Job, Kind, Started};
use super::{BackupGrant, CrashPoint, Follow, Refuse, Runner, both_regions, follow, send};
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

/// An EC2 request of a backup.
pub fn ec2(action: &str) -> AwsSpec {
    AwsSpec::step("ec2", Protocol::Ec2, action, EC2_VERSION)
}

/// An EBS snapshot request (CreateSnapshot or CopySnapshot).
pub struct SnapshotAsk {
    pub action: &'static str,
    pub iam_action: &'static str,
    pub resources: Vec<String>,
    pub params: Value,
    /// What the refusal says when the request fails ("the backup could not be started").
    pub failure: String,
    /// The snapshot's description: it names the request, so a snapshot this request started
    /// before a crash (and did not record) is found again instead of taken twice.
    pub description: String,
}

/// Finds the snapshot `ask` describes in `env`'s region, or sends `ask` there; returns the
/// snapshot's id. A new request is not yet recorded when it is accepted (the
/// `after-backup-request` crash point).
pub async fn request_snapshot<R: Runner>(
    r: &R,
    env: &Environment,
    req: &Request,
    ask: SnapshotAsk,
) -> Result<String, Refuse> {
    if let Some(id) = find_snapshot(r, env, &ask.description, req).await? {
        return Ok(id);
    }
    let doc = send(
        r,
        env,
        ec2(ask.action),
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
    let found = send(
        r,
        env,
        ec2("DescribeSnapshots"),
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
    let f = Follow {
        what: format!("backup {snap}"),
        place: format!("in {}", env.region),
        spec: ec2("DescribeSnapshots"),
        iam_action: DESCRIBE_SNAPSHOTS,
        resources: vec!["*".into()],
        params: json!({"SnapshotId": [snap]}),
        status: |doc| {
            let item = &doc["snapshotSet"][0];
            let status = item["status"].as_str().unwrap_or("unknown").to_string();
            (
                status,
                format!(" {}", item["progress"].as_str().unwrap_or("")),
            )
        },
        done: &["completed"],
        failed: &["error", "recoverable"],
    };
    follow(r, env, req, f).await
}

/// The EBS snapshot of a volume.
pub struct Ebs;

impl Kind for Ebs {
    async fn start<R: Runner>(&self, j: Job<'_, R>) -> Started {
        let Job { r, req, env } = j;
        let description = format!(
            "airlock backup of {} before request {}",
            req.resource_id, req.id
        );
        let ask = SnapshotAsk {
            action: "CreateSnapshot",
            iam_action: CREATE_SNAPSHOT,
            resources: vec![req.resource_arn.clone(), snapshots_in(env, &env.region)],
            params: json!({"VolumeId": req.resource_id, "Description": description}),
            failure: "the backup could not be started".into(),
            description,
        };
        request_snapshot(r, env, req, ask).await
    }

    async fn copy<R: Runner>(&self, j: Job<'_, R>, dest: &Environment, backup_id: &str) -> Started {
        let Job { r, req, env } = j;
        let description = format!(
            "airlock isolated copy of {backup_id} ({}) for request {}",
            req.resource_id, req.id
        );
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
            description,
        };
        request_snapshot(r, dest, req, ask).await
    }

    async fn wait<R: Runner>(&self, j: Job<'_, R>, id: &str) -> Result<(), Refuse> {
        let Job { r, req, env } = j;
        wait_snapshot(r, env, id, req).await
    }

    fn copy_wait_id<'a>(&self, copy_id: &'a str, _backup_id: &'a str) -> &'a str {
        copy_id
    }
}
