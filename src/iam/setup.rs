//! The AWS CLI commands that create the roles and attach the generated documents.

use std::collections::BTreeSet;

use super::buckets::log_export_bucket_file;
use super::{Document, Principals};
use crate::policy::Policy;

/// `arn:aws:iam::123456789012:role/path/name` -> (`name`, `/path/`).
pub(super) fn role_name(arn: &str) -> (String, String) {
    let rest = arn.split_once(":role/").map_or(arn, |(_, r)| r);
    match rest.rsplit_once('/') {
        Some((path, name)) => (name.to_string(), format!("/{path}/")),
        None => (rest.to_string(), "/".into()),
    }
}

/// The AWS CLI commands that create the roles and attach the documents, assuming they were
/// written to `dir`. For the operator to read and run (in the accounts the policy names).
pub fn setup_commands(
    policy: &Policy,
    docs: &[Document],
    principals: &Principals,
    dir: &str,
) -> Vec<String> {
    let has = |f: &str| docs.iter().any(|d| d.file == f);
    let mut out = Vec::new();
    let accounts: BTreeSet<(&str, &str)> = policy
        .environments
        .values()
        .map(|e| (e.partition.as_str(), e.account.as_str()))
        .collect();
    for (partition, account) in &accounts {
        out.push(format!("# in account {account}:"));
        out.push(format!(
            "aws iam create-policy --policy-name airlock-agent-boundary --policy-document file://{dir}/agent-boundary.json"
        ));
        for env in policy
            .environments
            .values()
            .filter(|e| e.account == *account && e.partition == *partition)
        {
            let (name, path) = role_name(&env.agent_role);
            out.push(format!(
                "aws iam create-role --role-name {name} --path {path} --assume-role-policy-document file://{dir}/agent-{}-trust.json --permissions-boundary arn:{partition}:iam::{account}:policy/airlock-agent-boundary",
                env.name
            ));
            let perm = format!("agent-{}-permissions.json", env.name);
            if has(&perm) {
                out.push(format!(
                    "aws iam put-role-policy --role-name {name} --policy-name airlock-agent --policy-document file://{dir}/{perm}"
                ));
            }
            if let Some(exec) = &env.executor_role {
                let perm = format!("executor-{}-permissions.json", env.name);
                if has(&perm) {
                    let (name, path) = role_name(exec);
                    out.push(format!(
                        "aws iam create-role --role-name {name} --path {path} --assume-role-policy-document file://{dir}/executor-{}-trust.json",
                        env.name
                    ));
                    out.push(format!(
                        "aws iam put-role-policy --role-name {name} --policy-name airlock-executor --policy-document file://{dir}/{perm}"
                    ));
                }
            }
        }
        let buckets: BTreeSet<&str> = policy
            .environments
            .values()
            .filter(|e| e.account == *account && e.partition == *partition)
            .filter_map(|e| e.log_export_bucket.as_deref())
            .collect();
        for bucket in buckets {
            let file = log_export_bucket_file(bucket);
            if has(&file) {
                out.push("# lets CloudWatch Logs write the exports taken before a log group is deleted (replaces the bucket's policy: merge by hand if it already has one)".into());
                out.push(format!(
                    "aws s3api put-bucket-policy --bucket {bucket} --policy file://{dir}/{file}"
                ));
            }
        }
    }
    let attach = |principal: &str, policy_name: &str, file: &str| {
        let kind = if principal.contains(":user/") {
            "user"
        } else {
            "role"
        };
        let name = principal.rsplit('/').next().unwrap_or(principal);
        format!(
            "aws iam put-{kind}-policy --{kind}-name {name} --policy-name {policy_name} --policy-document file://{dir}/{file}"
        )
    };
    out.push("# in the account of each principal:".into());
    out.push(attach(
        &principals.broker,
        "airlock-broker",
        "broker-policy.json",
    ));
    if let Some(o) = &principals.operator
        && has("operator-policy.json")
    {
        out.push(attach(o, "airlock-operator", "operator-policy.json"));
    }
    out
}
