//! `airlock init --non-interactive`: the plan from flags alone.

use airlock::config::names::{AccountId, BucketName, EnvName, Region};
use airlock::iam;

use super::{EnvAnswer, InitArgs, Plan, looks_prod, role_arn, role_name_ok, usage};
use crate::cli::iam::default_principal;

pub(super) fn from_flags(a: &InitArgs) -> anyhow::Result<Plan> {
    if a.envs.is_empty() {
        return Err(usage(
            "name at least one environment: --env NAME:ACCOUNT:REGION (e.g. --env staging:123456789012:us-east-1)",
        ));
    }
    let mut envs = Vec::new();
    for spec in &a.envs {
        let e = env_flag(a, spec)?;
        if envs.iter().any(|x: &EnvAnswer| x.name == e.name) {
            return Err(usage(format!("--env `{}` is given twice", e.name)));
        }
        envs.push(e);
    }
    for spec in &a.log_export_buckets {
        bucket_flag(spec, &mut envs)?;
    }
    names_flags(a)?;
    let first = &envs[0];
    Ok(Plan {
        principals: iam::Principals {
            broker: a
                .principals
                .broker_principal
                .clone()
                .unwrap_or_else(|| default_principal("aws", &first.account, "airlock-broker")),
            operator: Some(
                a.principals.operator_principal.clone().unwrap_or_else(|| {
                    default_principal("aws", &first.account, "airlock-operator")
                }),
            ),
            require_mfa: a.principals.require_mfa,
        },
        envs,
        db: a.db.as_ref().map(|d| d.display().to_string()),
        profile: a.profile.clone(),
        executor_profile: a.executor_profile.clone(),
        endpoint: a.endpoint.clone(),
        protect_tags: if a.protect_tags.is_empty() {
            vec!["env=prod".into()]
        } else {
            a.protect_tags.clone()
        },
    })
}

/// One `--env NAME:ACCOUNT:REGION[:prod]`.
fn env_flag(a: &InitArgs, spec: &str) -> anyhow::Result<EnvAnswer> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, account, region, prod) = match parts.as_slice() {
        [n, acc, r] => (*n, *acc, *r, looks_prod(n)),
        [n, acc, r, "prod"] => (*n, *acc, *r, true),
        _ => {
            return Err(usage(format!(
                "--env `{spec}` must be NAME:ACCOUNT:REGION or NAME:ACCOUNT:REGION:prod"
            )));
        }
    };
    if !EnvName::is_valid(name) {
        return Err(usage(format!(
            "--env `{spec}`: the name must be 1-32 letters, digits, - or _"
        )));
    }
    if !AccountId::is_valid(account) {
        return Err(usage(format!(
            "--env `{spec}`: the account must be the 12-digit AWS account id"
        )));
    }
    if let Err(m) = region.parse::<Region>() {
        return Err(usage(format!("--env `{spec}`: {m}")));
    }
    let backup_region = a
        .backup_region
        .as_ref()
        .filter(|b| !prod && b.as_str() != region)
        .map(Region::to_string);
    Ok(EnvAnswer {
        name: name.into(),
        account: account.into(),
        region: region.into(),
        prod,
        agent_role: role_arn(account, &a.agent_role_name, name),
        executor_role: (!prod).then(|| role_arn(account, &a.executor_role_name, name)),
        backup_region,
        log_export_bucket: None,
    })
}

/// One `--log-export-bucket ENV=BUCKET`, set on its environment.
fn bucket_flag(spec: &str, envs: &mut [EnvAnswer]) -> anyhow::Result<()> {
    let Some((env, bucket)) = spec.split_once('=') else {
        return Err(usage(format!(
            "--log-export-bucket `{spec}` must be ENV=BUCKET"
        )));
    };
    if !BucketName::is_valid(bucket) {
        return Err(usage(format!(
            "--log-export-bucket `{spec}`: `{bucket}` is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)"
        )));
    }
    match envs.iter_mut().find(|e| e.name == env) {
        Some(e) if !e.prod => e.log_export_bucket = Some(bucket.into()),
        Some(_) => {
            return Err(usage(format!(
                "--log-export-bucket `{spec}`: `{env}` is production, where nothing is deleted"
            )));
        }
        None => {
            return Err(usage(format!(
                "--log-export-bucket `{spec}`: no environment `{env}` (give it with --env)"
            )));
        }
    }
    Ok(())
}

/// The profile and role names given as flags.
fn names_flags(a: &InitArgs) -> anyhow::Result<()> {
    for pr in [&a.profile, &a.executor_profile].into_iter().flatten() {
        if !role_name_ok(pr) {
            return Err(usage(format!(
                "profile `{pr}` may use letters, digits and +=,.@_-"
            )));
        }
    }
    for t in [&a.agent_role_name, &a.executor_role_name] {
        if !role_name_ok(&t.replace("{env}", "x")) {
            return Err(usage(format!(
                "role name `{t}` may use letters, digits, +=,.@_- and {{env}}"
            )));
        }
    }
    Ok(())
}
