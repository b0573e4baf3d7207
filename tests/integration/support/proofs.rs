//! The scope proofs' tools: a session policy as airlock renders it, evaluated with iam-rs.

use std::sync::Arc;

use airlock::catalogue::Catalogue;
use airlock::config::source::SourceFile;
use airlock::credentials::StsBroker;
use airlock::engine::Engine;
use airlock::policy::Policy;
use iam_rs::{
    Arn, Context, Decision, IAMPolicy, IAMRequest, PolicyEvaluator, Principal, PrincipalId,
};
use serde_json::Value;

use super::repo;

/// Actions that change or destroy things, or hand out credentials: never in a read call's
/// session policy.
pub const DESTRUCTIVE: &[&str] = &[
    "ec2:DeleteVolume",
    "ec2:DetachVolume",
    "ec2:ModifyVolume",
    "ec2:CreateSnapshot",
    "ec2:DeleteSnapshot",
    "ec2:TerminateInstances",
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "logs:DeleteLogGroup",
    "logs:DeleteLogStream",
    "logs:PutRetentionPolicy",
    "logs:PutLogEvents",
    "logs:DeleteRetentionPolicy",
    "s3:DeleteObject",
    "s3:DeleteBucket",
    "s3:PutBucketPolicy",
    "rds:DeleteDBInstance",
    "iam:CreateAccessKey",
    "iam:PutRolePolicy",
    "sts:AssumeRole",
];

/// The ARN a request for `action` names: `resource`, or for `*` (actions that name no
/// resource) a wildcard ARN in the action's service and `region`.
pub fn arn_of(action: &str, resource: &str, region: &str) -> Arn {
    if resource == "*" {
        Arn {
            partition: "aws".into(),
            service: action.split(':').next().unwrap().into(),
            region: region.into(),
            account_id: String::new(),
            resource: "*".into(),
        }
    } else {
        Arn::parse(resource).expect("a valid ARN")
    }
}

/// iam-rs's decision for one request against a session policy document.
pub fn eval(policy_json: &str, action: &str, resource: &str, region: &str) -> Decision {
    let policy = IAMPolicy::from_json(policy_json).expect("a valid IAM policy");
    let arn = arn_of(action, resource, region);
    let ctx = Context::new().with_string("aws:RequestedRegion", region);
    let req = IAMRequest::new_with_context(
        Principal::Aws(PrincipalId::String(
            "arn:aws:sts::123456789012:assumed-role/airlock-agent-staging/s".into(),
        )),
        action,
        arn,
        ctx,
    );
    PolicyEvaluator::with_policies(vec![policy])
        .evaluate(&req)
        .expect("evaluation")
        .decision
}

fn policy_for(region: &str) -> Policy {
    let text = std::fs::read_to_string(repo().join("policy.toml"))
        .unwrap()
        .replace(
            "\nregion = \"us-east-1\"",
            &format!("\nregion = \"{region}\""),
        )
        .replace(
            "backup_region = \"us-west-2\"",
            "backup_region = \"ca-central-1\"",
        );
    Policy::parse(
        &SourceFile::new("policy.toml", text),
        Some(&Catalogue::builtin().unwrap()),
    )
    .unwrap()
}

pub fn engine(region: &str) -> Engine {
    Engine::new(
        Arc::new(policy_for(region)),
        Arc::new(Catalogue::builtin().unwrap()),
        Arc::new(StsBroker::new(airlock::policy::MIN_SESSION)),
    )
}

/// The session policy airlock renders for a call.
pub fn session_policy(e: &Engine, tool: &str, args: Value) -> String {
    let (_, plan) = e.plan(tool, args.as_object().unwrap()).unwrap();
    plan.session_policy
        .expect("an allowed AWS call has a session policy")
        .json
}
