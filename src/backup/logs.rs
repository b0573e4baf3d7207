//! `logs_export`: every event of the log group exported to the environment's
//! `log_export_bucket` under `airlock/REQUEST_ID` (CreateExportTask), waited for until
//! complete. The task is named after the request, so a restart finds the export it already
//! started instead of starting another. The S3 write is the Logs service's own, allowed by the
//! bucket's policy, not the executor's.

use serde_json::json;

use super::{
    BackupGrant, BackupKind, BackupPlan, CrashPoint, Follow, Refuse, Runner, done, follow, send,
};
use crate::catalogue::{AwsSpec, Protocol};
use crate::policy::Environment;
use crate::queue::{Phase, Request};
use crate::timefmt::now_ms;

/// The IAM actions of a log-group export: CreateExportTask on the group, DescribeExportTasks
/// (no resource-level permission) to follow it.
pub const CREATE_EXPORT: &str = "logs:CreateExportTask";
pub const DESCRIBE_EXPORTS: &str = "logs:DescribeExportTasks";

/// Where request `request_id`'s export is written in the bucket.
pub fn prefix(request_id: &str) -> String {
    format!("airlock/{request_id}")
}

pub fn plan(env: &Environment, request_id: &str) -> BackupPlan {
    let kind = BackupKind::LogsExport.as_str();
    match &env.log_export_bucket {
        Some(b) => {
            let at = format!("s3://{b}/{}", prefix(request_id));
            BackupPlan {
                kind,
                summary: format!("every event exported to {at}"),
                kept_in: Some(at),
                none_reason: None,
                refused: super::isolation_missing(env),
            }
        }
        None => BackupPlan {
            kind,
            summary: "an export of every event to the environment's log_export_bucket".into(),
            kept_in: None,
            none_reason: None,
            refused: Some(format!(
                "environment `{}` names no log_export_bucket, so the log group cannot be exported before it is deleted",
                env.name
            )),
        },
    }
}

pub fn grants(env: &Environment, resources: &[String]) -> Vec<BackupGrant> {
    vec![
        BackupGrant {
            sid: "BackupExportLogGroup",
            actions: vec![CREATE_EXPORT.into()],
            resources: resources.to_vec(),
            regions: vec![env.region.clone()],
        },
        BackupGrant {
            sid: "BackupFollowLogExport",
            actions: vec![DESCRIBE_EXPORTS.into()],
            resources: vec!["*".into()],
            regions: vec![env.region.clone()],
        },
    ]
}

/// A CloudWatch Logs request of a backup.
fn logs(action: &str) -> AwsSpec {
    let mut spec = AwsSpec::step("logs", Protocol::Json, action, "");
    spec.version = None;
    spec.target = Some(format!("Logs_20140328.{action}"));
    spec
}

pub async fn run<R: Runner>(r: &R, req: &mut Request, env: &Environment) -> Result<(), Refuse> {
    let Some(bucket) = env.log_export_bucket.clone() else {
        return Err(Refuse(format!(
            "environment `{}` names no log_export_bucket, so the log group cannot be exported before it is deleted; nothing was deleted",
            env.name
        )));
    };
    let prefix = prefix(&req.id);
    let destination = format!("s3://{bucket}/{prefix}");
    let task_id = match &req.backup_id {
        Some(t) => t.clone(),
        None => {
            let id = start(r, req, env, &bucket, &prefix).await?;
            r.phase(
                Phase::BackupStarted,
                json!({"backup_id": id, "destination": destination}),
            )
            .await?;
            req.backup_id = Some(id.clone());
            id
        }
    };
    let f = Follow {
        what: format!("export {task_id}"),
        place: format!("to {destination}"),
        spec: logs("DescribeExportTasks"),
        iam_action: DESCRIBE_EXPORTS,
        resources: vec!["*".into()],
        params: json!({"taskId": task_id}),
        status: |doc| {
            let code = doc["exportTasks"][0]["status"]["code"].as_str();
            (
                code.unwrap_or("unknown").to_ascii_uppercase(),
                String::new(),
            )
        },
        done: &["COMPLETED"],
        failed: &["CANCELLED", "FAILED", "UNKNOWN"],
    };
    follow(r, env, req, f).await?;
    done(r, json!({"backup_id": task_id, "destination": destination})).await
}

/// The export this request started before a crash (found by its name), or a new one.
async fn start<R: Runner>(
    r: &R,
    req: &Request,
    env: &Environment,
    bucket: &str,
    prefix: &str,
) -> Result<String, Refuse> {
    let task_name = format!("airlock-{}", req.id);
    if let Some(id) = find_export(r, env, &task_name).await? {
        r.say(format!(
            "{}: found this request's export {id} (resuming)",
            req.id
        ));
        return Ok(id);
    }
    let group_arns = vec![req.resource_arn.clone(), format!("{}:*", req.resource_arn)];
    let doc = send(r, env, logs("CreateExportTask"),
        CREATE_EXPORT,
        group_arns,
        json!({"taskName": task_name, "logGroupName": req.resource_id, "from": 0, "to": now_ms(), "destination": bucket, "destinationPrefix": prefix}),
    )
    .await
    .map_err(|e| Refuse(format!("the export to s3://{bucket}/{prefix} could not be started, so nothing was deleted: {e}")))?;
    r.crash_point(CrashPoint::AfterBackupRequest).await;
    doc["taskId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Refuse("CreateExportTask returned no task id".into()))
}

/// An export task this request started earlier (by its name), if any.
async fn find_export<R: Runner>(
    r: &R,
    env: &Environment,
    task_name: &str,
) -> Result<Option<String>, Refuse> {
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let mut params = json!({"limit": 50});
        if let Some(t) = &token {
            params["nextToken"] = json!(t);
        }
        let doc = send(
            r,
            env,
            logs("DescribeExportTasks"),
            DESCRIBE_EXPORTS,
            vec!["*".into()],
            params,
        )
        .await
        .map_err(|e| {
            Refuse(format!(
                "could not look for an earlier export, so nothing was deleted: {e}"
            ))
        })?;
        if let Some(t) = doc["exportTasks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["taskName"] == json!(task_name))
        {
            return Ok(t["taskId"].as_str().map(str::to_string));
        }
        token = doc["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(None)
}
