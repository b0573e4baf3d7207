//! The bucket policy of each `log_export_bucket` (the `logs_export` backup writes there).

use std::collections::BTreeMap;

use serde_json::json;

use super::{Document, IamError, Kind, LOG_EXPORT_PREFIX, MAX_BUCKET_POLICY, camel, check_size};
use crate::policy::{Environment, Policy};

/// The CloudWatch Logs service principal of `env`'s region.
pub fn logs_service(env: &Environment) -> String {
    let suffix = if env.partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("logs.{}.{suffix}", env.region)
}

/// The file a `log_export_bucket`'s policy is written to.
pub fn log_export_bucket_file(bucket: &str) -> String {
    format!("log-export-bucket-{bucket}.json")
}

/// One bucket policy per `log_export_bucket`: for each environment naming it, its region's
/// CloudWatch Logs service may read the bucket's ACL and put objects under
/// [`LOG_EXPORT_PREFIX`] with `bucket-owner-full-control`, for that environment's account and
/// log groups only (AWS's "export log data to Amazon S3" policy, narrowed to airlock's prefix).
pub(super) fn log_export_bucket_policies(policy: &Policy) -> Result<Vec<Document>, IamError> {
    let mut by_bucket: BTreeMap<&str, Vec<&Environment>> = BTreeMap::new();
    for env in policy.environments.values() {
        if let Some(b) = &env.log_export_bucket {
            by_bucket.entry(b).or_default().push(env);
        }
    }
    let mut docs = Vec::new();
    for (bucket, envs) in by_bucket {
        let mut statements = Vec::new();
        for env in &envs {
            let p = &env.partition;
            let principal = json!({"Service": logs_service(env)});
            let source_arn = format!("arn:{p}:logs:{}:{}:log-group:*", env.region, env.account);
            let id = camel(&env.name);
            statements.push(json!({
                "Sid": format!("LogsReadsAcl{id}"),
                "Effect": "Allow",
                "Principal": principal,
                "Action": "s3:GetBucketAcl",
                "Resource": format!("arn:{p}:s3:::{bucket}"),
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": env.account},
                    "ArnLike": {"aws:SourceArn": source_arn},
                },
            }));
            statements.push(json!({
                "Sid": format!("LogsWritesExports{id}"),
                "Effect": "Allow",
                "Principal": principal,
                "Action": "s3:PutObject",
                "Resource": format!("arn:{p}:s3:::{bucket}/{LOG_EXPORT_PREFIX}*"),
                "Condition": {
                    "StringEquals": {
                        "s3:x-amz-acl": "bucket-owner-full-control",
                        "aws:SourceAccount": env.account,
                    },
                    "ArnLike": {"aws:SourceArn": source_arn},
                },
            }));
        }
        let file = log_export_bucket_file(bucket);
        let json = json!({"Version": "2012-10-17", "Statement": statements});
        check_size(&file, &json, MAX_BUCKET_POLICY)?;
        let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        docs.push(Document {
            file,
            kind: Kind::LogExportBucket {
                bucket: bucket.to_string(),
            },
            title: format!(
                "bucket policy of s3://{bucket}: CloudWatch Logs of {} may write log exports under {LOG_EXPORT_PREFIX}, nothing else",
                names.join(", ")
            ),
            json,
            notes: Vec::new(),
        });
    }
    Ok(docs)
}
