//! `airlock init` and the IAM documents it generates (`airlock iam`).
//!
//! The documents are proved with an independent evaluator (iam-rs): the agent roles can read
//! what their enabled tools read and delete nothing; the boundary denies every delete; the
//! broker can do nothing but assume the agent roles (and simulate its own policy, for doctor); the executor can delete only what the
//! destructive tools declare; each trust policy admits only its principal (with a
//! SourceIdentity for agents, MFA for the executor when asked); a log export bucket's policy
//! admits only CloudWatch Logs writing exports under airlock/. Then, against moto with
//! enforcement on: the documents applied as the printed commands would apply them keep the
//! broker, agent and executor apart; `init` in an empty folder, `check`, and the demo flow work
//! end to end; and the interactive path works through a real pseudo-terminal.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use airlock::catalogue::Catalogue;
use airlock::config::source::SourceFile;
use airlock::credentials::{CredentialBroker, StsBroker};
use airlock::engine::{CallContext, Engine};
use airlock::iam::{self, Document, Kind, Principals};
use airlock::policy::Policy;
use aws_credential_types::Credentials;
use iam_rs::{
    Arn, Context, Decision, EvaluationOptions, IAMPolicy, IAMRequest, PolicyEvaluator, Principal,
    PrincipalId,
};
use serde_json::{Value, json};

use crate::support::proofs::arn_of;
use crate::support::*;

const ACCOUNT: &str = "123456789012";
const BROKER: &str = "arn:aws:iam::123456789012:user/airlock-broker";
const OPERATOR: &str = "arn:aws:iam::123456789012:user/airlock-operator";
const AGENT_STAGING: &str = "arn:aws:iam::123456789012:role/airlock-agent-staging";
const AGENT_PROD: &str = "arn:aws:iam::123456789012:role/airlock-agent-prod";
const EXECUTOR_STAGING: &str = "arn:aws:iam::123456789012:role/airlock-executor-staging";

/// Actions no agent role may ever be allowed, on any resource.
const NEVER_FOR_AGENTS: &[&str] = &[
    "ec2:DeleteVolume",
    "ec2:DeleteSnapshot",
    "ec2:TerminateInstances",
    "ec2:DetachVolume",
    "ec2:CreateSnapshot",
    "ec2:ModifyVolume",
    "rds:DeleteDBInstance",
    "rds:DeleteDBCluster",
    "logs:DeleteLogGroup",
    "logs:DeleteLogStream",
    "logs:PutRetentionPolicy",
    "s3:DeleteBucket",
    "s3:DeleteObject",
    "s3:GetObject",
    "dynamodb:DeleteTable",
    "lambda:DeleteFunction",
    "iam:CreateAccessKey",
    "iam:DeleteRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PassRole",
    "sts:AssumeRole",
];

/// Resources to try every forbidden action on.
const SOME_RESOURCES: &[&str] = &[
    "*",
    "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0",
    "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0",
    "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/api",
    "arn:aws:rds:us-east-1:123456789012:db:main",
    "arn:aws:s3:::bucket",
    "arn:aws:iam::123456789012:role/airlock-executor-staging",
];

fn principals(mfa: bool) -> Principals {
    Principals {
        broker: BROKER.into(),
        operator: Some(OPERATOR.into()),
        require_mfa: mfa,
    }
}

/// The repository's demo policy: staging with read_logs narrowed and deletes approved, prod
/// with read_logs and deletes denied.
fn demo_documents(mfa: bool) -> BTreeMap<String, Document> {
    let c = Catalogue::builtin().unwrap();
    let text = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let p = Policy::parse(&SourceFile::new("policy.toml", text), Some(&c)).unwrap();
    iam::documents(&p, &c, &principals(mfa))
        .unwrap()
        .into_iter()
        .map(|d| (d.file.clone(), d))
        .collect()
}

/// iam-rs's decision for an identity policy (or several, as IAM combines them).
fn eval(docs: &[&Document], who: &str, action: &str, resource: &str, region: &str) -> Decision {
    let policies = docs
        .iter()
        .map(|d| IAMPolicy::from_json(&d.json.to_string()).expect("a valid IAM policy"))
        .collect();
    let req = IAMRequest::new_with_context(
        Principal::Aws(PrincipalId::String(who.into())),
        action,
        arn_of(action, resource, region),
        Context::new().with_string("aws:RequestedRegion", region),
    );
    PolicyEvaluator::with_policies(policies)
        .evaluate(&req)
        .expect("evaluation")
        .decision
}

/// iam-rs's decision for a trust policy: may `who` call `action` on the role?
fn trust(doc: &Document, who: &str, action: &str, ctx: Context) -> Decision {
    let req = IAMRequest::new_with_context(
        Principal::Aws(PrincipalId::String(who.into())),
        action,
        Arn::parse(EXECUTOR_STAGING).unwrap(),
        ctx,
    );
    PolicyEvaluator::with_policies(vec![IAMPolicy::from_json(&doc.json.to_string()).unwrap()])
        .with_options(EvaluationOptions {
            ignore_resource_constraints: true,
            ..Default::default()
        })
        .evaluate(&req)
        .expect("evaluation")
        .decision
}

fn actions_of(d: &Document) -> Vec<String> {
    let mut out: Vec<String> = d.json["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            Value::String(x) => vec![x.clone()],
            _ => vec![],
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn agent_roles_hold_exactly_the_enabled_read_actions() {
    let d = demo_documents(false);
    // The inventory tools everywhere, plus the read_logs in staging (and list_volumes again as
    // request_delete_volume's look).
    let inventory = [
        "dynamodb:ListTables",
        "ec2:DescribeSnapshots",
        "ec2:DescribeVolumes",
        "ecs:ListClusters",
        "logs:DescribeLogGroups",
        "rds:DescribeDBInstances",
        "rds:DescribeDBSnapshots",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketVersioning",
        "s3:GetLifecycleConfiguration",
        "s3:ListAllMyBuckets",
    ];
    let mut staging_actions: Vec<&str> = inventory.to_vec();
    staging_actions.push("logs:FilterLogEvents");
    staging_actions.sort();
    assert_eq!(
        actions_of(&d["agent-staging-permissions.json"]),
        staging_actions
    );
    // prod: read_logs and request_delete_volume are denied there.
    assert_eq!(actions_of(&d["agent-prod-permissions.json"]), inventory);
    let staging = &d["agent-staging-permissions.json"];
    let logs = "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/api";
    for (action, resource) in [
        ("ec2:DescribeVolumes", "*"),
        ("logs:FilterLogEvents", logs),
        ("logs:FilterLogEvents", &format!("{logs}:log-stream:api-1")),
    ] {
        assert_eq!(
            eval(&[staging], AGENT_STAGING, action, resource, "us-east-1"),
            Decision::Allow,
            "{action} on {resource}"
        );
        // The role and its boundary together (IAM intersects them): still allowed.
        assert_eq!(
            eval(&[staging], AGENT_STAGING, action, resource, "us-east-1"),
            eval(
                &[&d["agent-boundary.json"]],
                AGENT_STAGING,
                action,
                resource,
                "us-east-1"
            ),
            "the boundary must allow {action}"
        );
        // Not in another region, nor in another account's log groups.
        assert_ne!(
            eval(&[staging], AGENT_STAGING, action, resource, "eu-west-1"),
            Decision::Allow
        );
    }
    assert_ne!(
        eval(
            &[staging],
            AGENT_STAGING,
            "logs:FilterLogEvents",
            "arn:aws:logs:us-east-1:999999999999:log-group:/app/staging/api",
            "us-east-1"
        ),
        Decision::Allow
    );
    assert_ne!(
        eval(
            &[&d["agent-prod-permissions.json"]],
            AGENT_PROD,
            "logs:FilterLogEvents",
            "arn:aws:logs:us-west-2:123456789012:log-group:/app/prod/api",
            "us-west-2"
        ),
        Decision::Allow,
        "read_logs is denied in prod, so the prod role cannot read logs at all"
    );
}

/// The staging agent role's permissions that `airlock init` generates from policy `text`.
fn staging_agent_document(c: &Catalogue, text: &str) -> Document {
    let p = Policy::parse(&SourceFile::new("policy.toml", text), Some(c)).unwrap();
    iam::documents(&p, c, &principals(false))
        .unwrap()
        .into_iter()
        .find(|d| d.file == "agent-staging-permissions.json")
        .unwrap()
}

/// iam-rs's decision: may the staging agent role, holding `staging`, read log events from
/// `resource` in its region?
fn staging_reads_logs(staging: &Document, resource: &str) -> Decision {
    eval(
        &[staging],
        AGENT_STAGING,
        "logs:FilterLogEvents",
        resource,
        "us-east-1",
    )
}

/// A rule's `resources` reach the agent role where the tool's resource template can express
/// them: an agent that rewrites policy.toml (or points serve at its own) to widen read_logs
/// from /app/staging/* still cannot read another log group, because IAM refuses it.
#[test]
fn agent_roles_hold_read_tools_to_the_rules_resources() {
    let d = demo_documents(false);
    let staging = &d["agent-staging-permissions.json"];
    let group = |g: &str| format!("arn:aws:logs:us-east-1:123456789012:log-group:{g}");
    for (resource, want) in [
        (group("/app/staging/api"), Decision::Allow),
        (group("/app/staging/api:*"), Decision::Allow),
        (group("/app/staging/api:log-stream:api-1"), Decision::Allow),
        (group("/app/other/api"), Decision::Deny),
        (group("/app/other/api:*"), Decision::Deny),
        (group("/app/other/api:log-stream:api-1"), Decision::Deny),
        (group("/app/stagingX/api"), Decision::Deny),
        (group("/app/prod/api"), Decision::Deny),
    ] {
        let got = staging_reads_logs(staging, &resource);
        if want == Decision::Allow {
            assert_eq!(got, Decision::Allow, "FilterLogEvents on {resource}");
        } else {
            assert_ne!(got, Decision::Allow, "FilterLogEvents on {resource}");
        }
    }

    // The same tool with a rule that names no resources keeps the whole template, and a rule
    // whose globs the template cannot express (list_volumes: `*`) is kept with a note.
    let c = Catalogue::builtin().unwrap();
    let text = r#"version = 1
[environments.staging]
account = "123456789012"
region = "us-east-1"
agent_role = "arn:aws:iam::123456789012:role/airlock-agent-staging"
[[rules]]
tools = ["read_logs"]
resources = ["/app/staging/*", "/shared/audit"]
decision = "allow"
[[rules]]
tools = ["list_volumes"]
resources = ["vol-0*"]
decision = "allow"
"#;
    let staging = &staging_agent_document(&c, text);
    for (g, want) in [
        ("/app/staging/web", true),
        ("/shared/audit", true),
        ("/shared/audit2", false),
        ("/shared/other", false),
    ] {
        let got = staging_reads_logs(staging, &group(g));
        assert_eq!(got == Decision::Allow, want, "FilterLogEvents on {g}");
    }
    assert_eq!(staging.notes.len(), 1, "{:?}", staging.notes);
    assert!(
        staging.notes[0].starts_with("list_volumes in staging: policy.toml limits it to vol-0*")
            && staging.notes[0].contains("airlock alone enforces"),
        "{}",
        staging.notes[0]
    );
    let wide = text.replace("resources = [\"/app/staging/*\", \"/shared/audit\"]\n", "");
    let staging = &staging_agent_document(&c, &wide);
    assert_eq!(
        staging_reads_logs(staging, &group("/anything/at/all")),
        Decision::Allow,
        "a rule without resources allows every log group, and so does the role"
    );
}

#[test]
fn agent_roles_and_their_boundary_can_delete_nothing() {
    let d = demo_documents(false);
    let boundary = &d["agent-boundary.json"];
    for (file, role, region) in [
        ("agent-staging-permissions.json", AGENT_STAGING, "us-east-1"),
        ("agent-prod-permissions.json", AGENT_PROD, "us-west-2"),
    ] {
        for action in NEVER_FOR_AGENTS {
            for resource in SOME_RESOURCES {
                assert_ne!(
                    eval(&[&d[file]], role, action, resource, region),
                    Decision::Allow,
                    "{file} allows {action} on {resource}"
                );
                // The boundary denies explicitly: even a broader policy attached to the role
                // by mistake could not grant these.
                assert_eq!(
                    eval(&[boundary], role, action, resource, region),
                    Decision::Deny,
                    "the boundary must deny {action} on {resource}"
                );
            }
        }
    }
    // An administrator policy attached by mistake, with the boundary: still no delete.
    let admin = Document {
        file: "admin.json".into(),
        kind: Kind::Broker,
        title: String::new(),
        json: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        notes: Vec::new(),
    };
    assert_eq!(
        eval(
            &[&admin, boundary],
            AGENT_STAGING,
            "ec2:DeleteVolume",
            "*",
            "us-east-1"
        ),
        Decision::Deny
    );
}

#[test]
fn the_broker_can_only_assume_the_agent_roles() {
    let d = demo_documents(false);
    let broker = &d["broker-policy.json"];
    for role in [AGENT_STAGING, AGENT_PROD] {
        for action in ["sts:AssumeRole", "sts:SetSourceIdentity"] {
            assert_eq!(
                eval(&[broker], BROKER, action, role, "us-east-1"),
                Decision::Allow,
                "{action} on {role}"
            );
        }
    }
    // The executor role: denied explicitly.
    for action in ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"] {
        assert_eq!(
            eval(&[broker], BROKER, action, EXECUTOR_STAGING, "us-east-1"),
            Decision::Deny
        );
    }
    for (action, resource) in [
        ("sts:AssumeRole", "arn:aws:iam::123456789012:role/admin"),
        ("sts:TagSession", AGENT_STAGING),
        ("sts:GetFederationToken", "*"),
        ("ec2:DescribeVolumes", "*"),
        ("ec2:DeleteVolume", "*"),
        ("s3:GetObject", "arn:aws:s3:::bucket/key"),
        ("s3:ListAllMyBuckets", "*"),
        ("logs:FilterLogEvents", "*"),
        ("iam:CreateAccessKey", "*"),
        ("iam:PassRole", AGENT_STAGING),
    ] {
        assert_ne!(
            eval(&[broker], BROKER, action, resource, "us-east-1"),
            Decision::Allow,
            "the broker may {action} on {resource}"
        );
    }
    // The policy simulator (doctor's control 2) on its own ARN only: never on another
    // principal, which would let it map what the agent or executor roles may do.
    assert_eq!(
        eval(
            &[broker],
            BROKER,
            "iam:SimulatePrincipalPolicy",
            BROKER,
            "us-east-1"
        ),
        Decision::Allow
    );
    for other in [
        AGENT_STAGING,
        EXECUTOR_STAGING,
        OPERATOR,
        "arn:aws:iam::123456789012:user/airlock-broker2",
        "*",
    ] {
        assert_ne!(
            eval(
                &[broker],
                BROKER,
                "iam:SimulatePrincipalPolicy",
                other,
                "us-east-1"
            ),
            Decision::Allow,
            "simulate on {other}"
        );
    }
    for action in [
        "iam:SimulateCustomPolicy",
        "iam:GetUserPolicy",
        "iam:ListAttachedUserPolicies",
    ] {
        assert_ne!(
            eval(&[broker], BROKER, action, BROKER, "us-east-1"),
            Decision::Allow,
            "{action}"
        );
    }
    // Only these actions, and no wildcard resource.
    assert_eq!(
        actions_of(broker),
        [
            "iam:SimulatePrincipalPolicy",
            "sts:AssumeRole",
            "sts:SetSourceIdentity"
        ]
    );
    assert!(
        !broker.json.to_string().contains("\"*\""),
        "{}",
        broker.json
    );
}

#[test]
fn the_executor_can_delete_only_what_the_destructive_tools_declare() {
    let d = demo_documents(false);
    let ex = &d["executor-staging-permissions.json"];
    let vol = "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0";
    for (action, resource, region) in [
        ("ec2:DeleteVolume", vol, "us-east-1"),
        ("ec2:DescribeVolumes", "*", "us-east-1"),
        ("ec2:CreateSnapshot", vol, "us-east-1"),
        (
            "ec2:CreateSnapshot",
            "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0",
            "us-east-1",
        ),
        ("ec2:DescribeSnapshots", "*", "us-east-1"),
        ("ec2:DescribeSnapshots", "*", "us-west-2"),
        (
            "ec2:CopySnapshot",
            "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0",
            "us-west-2",
        ),
        (
            "ec2:CopySnapshot",
            "arn:aws:ec2:us-west-2::snapshot/snap-0123456789abcdef1",
            "us-west-2",
        ),
    ] {
        assert_eq!(
            eval(&[ex], EXECUTOR_STAGING, action, resource, region),
            Decision::Allow,
            "{action} on {resource} in {region}"
        );
    }
    for (action, resource, region) in [
        ("ec2:DeleteVolume", vol, "us-west-2"),
        (
            "ec2:DeleteVolume",
            "arn:aws:ec2:us-east-1:999999999999:volume/vol-0123456789abcdef0",
            "us-east-1",
        ),
        // Staging approves snapshot deletes: in its own region only.
        (
            "ec2:DeleteSnapshot",
            "arn:aws:ec2:us-west-2::snapshot/snap-0123456789abcdef0",
            "us-west-2",
        ),
        ("ec2:TerminateInstances", "*", "us-east-1"),
        ("rds:DeleteDBInstance", "*", "us-east-1"),
        ("logs:DeleteLogGroup", "*", "us-east-1"),
        ("s3:DeleteBucket", "arn:aws:s3:::bucket", "us-east-1"),
        ("iam:CreateAccessKey", "*", "us-east-1"),
        ("sts:AssumeRole", AGENT_STAGING, "us-east-1"),
    ] {
        assert_ne!(
            eval(&[ex], EXECUTOR_STAGING, action, resource, region),
            Decision::Allow,
            "the executor may {action} on {resource} in {region}"
        );
    }
    // Its deletes are exactly the declared actions of the destructive tools staging approves.
    let c = Catalogue::builtin().unwrap();
    let text = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let p = Policy::parse(&SourceFile::new("policy.toml", text), Some(&c)).unwrap();
    let mut declared: Vec<String> = iam::executor_tools(&p, &c, "staging")
        .iter()
        .flat_map(|t| t.aws().unwrap().iam_actions.clone())
        .collect();
    declared.sort();
    declared.dedup();
    assert!(!declared.is_empty());
    let deletes: Vec<String> = actions_of(ex)
        .into_iter()
        .filter(|a| a.contains(":Delete") || a.contains(":Terminate"))
        .collect();
    assert_eq!(deletes, declared);
    // prod has no executor role: no executor document.
    assert!(!d.contains_key("executor-prod-permissions.json"));
}

#[test]
fn trust_policies_admit_only_their_principal() {
    let d = demo_documents(true);
    let agent = &d["agent-staging-trust.json"];
    let with_identity = || Context::new().with_string("sts:SourceIdentity", "airlock-cursor-abc");
    assert_eq!(
        trust(agent, BROKER, "sts:AssumeRole", with_identity()),
        Decision::Allow
    );
    assert_eq!(
        trust(agent, BROKER, "sts:SetSourceIdentity", with_identity()),
        Decision::Allow
    );
    // Without a SourceIdentity, or one airlock does not set: refused.
    assert_ne!(
        trust(agent, BROKER, "sts:AssumeRole", Context::new()),
        Decision::Allow
    );
    assert_ne!(
        trust(
            agent,
            BROKER,
            "sts:AssumeRole",
            Context::new().with_string("sts:SourceIdentity", "someone")
        ),
        Decision::Allow
    );
    for other in [
        OPERATOR,
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::999999999999:user/airlock-broker",
    ] {
        assert_ne!(
            trust(agent, other, "sts:AssumeRole", with_identity()),
            Decision::Allow,
            "{other}"
        );
    }
    let ex = &d["executor-staging-trust.json"];
    let mfa = |on: bool| Context::new().with_boolean("aws:MultiFactorAuthPresent", on);
    assert_eq!(
        trust(ex, OPERATOR, "sts:AssumeRole", mfa(true)),
        Decision::Allow
    );
    assert_ne!(
        trust(ex, OPERATOR, "sts:AssumeRole", mfa(false)),
        Decision::Allow
    );
    assert_ne!(
        trust(ex, OPERATOR, "sts:AssumeRole", Context::new()),
        Decision::Allow
    );
    assert_ne!(
        trust(ex, BROKER, "sts:AssumeRole", mfa(true)),
        Decision::Allow
    );
    // Without --require-mfa, the operator needs no MFA (an executor run as a service).
    let d = demo_documents(false);
    assert_eq!(
        trust(
            &d["executor-staging-trust.json"],
            OPERATOR,
            "sts:AssumeRole",
            Context::new()
        ),
        Decision::Allow
    );
}

/// The documents for a fixed input (the demo policy over the first built-in tools, so tools
/// added later do not change it), as a reviewer reads them.
/// iam-rs's decision for a bucket policy: may `who` (a service or an AWS principal) call
/// `action` on `resource` with these request facts?
fn bucket(doc: &Document, who: Principal, action: &str, resource: &str, ctx: Context) -> Decision {
    let req = IAMRequest::new_with_context(who, action, Arn::parse(resource).unwrap(), ctx);
    PolicyEvaluator::with_policies(vec![IAMPolicy::from_json(&doc.json.to_string()).unwrap()])
        .evaluate(&req)
        .expect("evaluation")
        .decision
}

/// The log export bucket's policy lets exactly one thing in: CloudWatch Logs of the
/// environment's region, for log groups of its account, reading the bucket ACL and writing
/// objects under airlock/ that the bucket owner fully controls. No delete, no read of objects,
/// no other prefix, bucket, account, region, service or principal.
#[test]
fn the_log_export_bucket_admits_only_cloudwatch_logs_writing_exports() {
    let docs = demo_documents(false);
    let name = "airlock-staging-log-exports";
    let doc = &docs[&format!("log-export-bucket-{name}.json")];
    assert_eq!(
        doc.kind,
        Kind::LogExportBucket {
            bucket: name.into()
        }
    );
    let logs = |region: &str| {
        Principal::Service(PrincipalId::String(format!("logs.{region}.amazonaws.com")))
    };
    let group = "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/old-batch";
    let facts = |account: &str, source: &str, acl: Option<&str>| {
        let c = Context::new()
            .with_string("aws:SourceAccount", account)
            .with_string("aws:SourceArn", source);
        match acl {
            Some(a) => c.with_string("s3:x-amz-acl", a),
            None => c,
        }
    };
    let good = || facts(ACCOUNT, group, Some("bucket-owner-full-control"));
    let bucket_arn = format!("arn:aws:s3:::{name}");
    let export = format!("arn:aws:s3:::{name}/airlock/r-0123456789ab/aws-logs-write-test");
    let object = format!("arn:aws:s3:::{name}/airlock/r-0123456789ab/0/000000.gz");

    // What an export needs.
    assert_eq!(
        bucket(
            doc,
            logs("us-east-1"),
            "s3:GetBucketAcl",
            &bucket_arn,
            good()
        ),
        Decision::Allow
    );
    for key in [&export, &object] {
        assert_eq!(
            bucket(doc, logs("us-east-1"), "s3:PutObject", key, good()),
            Decision::Allow,
            "{key}"
        );
    }

    // Other objects: another prefix, the bucket's root, another bucket.
    for key in [
        format!("arn:aws:s3:::{name}/other/x"),
        format!("arn:aws:s3:::{name}/airlockx/x"),
        format!("arn:aws:s3:::{name}/x"),
        "arn:aws:s3:::another-bucket/airlock/x".to_string(),
    ] {
        assert_ne!(
            bucket(doc, logs("us-east-1"), "s3:PutObject", &key, good()),
            Decision::Allow,
            "{key}"
        );
    }
    assert_ne!(
        bucket(
            doc,
            logs("us-east-1"),
            "s3:GetBucketAcl",
            "arn:aws:s3:::another-bucket",
            good()
        ),
        Decision::Allow
    );

    // Without the owner's full control, or for another account or its log groups.
    for ctx in [
        facts(ACCOUNT, group, None),
        facts(ACCOUNT, group, Some("public-read")),
        facts("210987654321", group, Some("bucket-owner-full-control")),
        facts(
            "210987654321",
            "arn:aws:logs:us-east-1:210987654321:log-group:/x",
            Some("bucket-owner-full-control"),
        ),
        facts(
            ACCOUNT,
            "arn:aws:logs:us-west-2:123456789012:log-group:/x",
            Some("bucket-owner-full-control"),
        ),
        Context::new().with_string("s3:x-amz-acl", "bucket-owner-full-control"),
    ] {
        assert_ne!(
            bucket(doc, logs("us-east-1"), "s3:PutObject", &object, ctx.clone()),
            Decision::Allow,
            "{ctx:?}"
        );
    }
    assert_ne!(
        bucket(
            doc,
            logs("us-east-1"),
            "s3:GetBucketAcl",
            &bucket_arn,
            facts("210987654321", group, None)
        ),
        Decision::Allow
    );

    // Another region's Logs, another service, an IAM principal of the account itself.
    for who in [
        logs("us-west-2"),
        Principal::Service(PrincipalId::String("s3.amazonaws.com".into())),
        Principal::Service(PrincipalId::String("logs.amazonaws.com".into())),
        Principal::Aws(PrincipalId::String(EXECUTOR_STAGING.into())),
        Principal::Aws(PrincipalId::String(AGENT_STAGING.into())),
        Principal::Aws(PrincipalId::String("arn:aws:iam::123456789012:root".into())),
    ] {
        for (action, resource) in [
            ("s3:PutObject", object.as_str()),
            ("s3:GetBucketAcl", bucket_arn.as_str()),
        ] {
            assert_ne!(
                bucket(doc, who.clone(), action, resource, good()),
                Decision::Allow,
                "{who:?} {action}"
            );
        }
    }

    // Nothing but those two actions, even for Logs with every fact right.
    for action in [
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:DeleteBucket",
        "s3:DeleteBucketPolicy",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObjectAcl",
        "s3:PutBucketAcl",
        "s3:PutBucketPolicy",
        "s3:PutLifecycleConfiguration",
        "s3:*",
    ] {
        for resource in [&bucket_arn, &object] {
            assert_ne!(
                bucket(doc, logs("us-east-1"), action, resource, good()),
                Decision::Allow,
                "{action} on {resource}"
            );
        }
    }
    let mut granted: Vec<(String, String)> = doc.json["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            assert_eq!(st["Effect"], "Allow", "{st}");
            assert_eq!(
                st["Principal"],
                json!({"Service": "logs.us-east-1.amazonaws.com"})
            );
            (
                st["Action"].as_str().unwrap().to_string(),
                st["Resource"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            ("s3:GetBucketAcl".to_string(), bucket_arn.clone()),
            (
                "s3:PutObject".to_string(),
                format!("{bucket_arn}/airlock/*")
            ),
        ]
    );

    // Only environments that name a bucket get one (prod names none), and the printed setup
    // commands apply it.
    assert_eq!(
        docs.values()
            .filter(|d| matches!(d.kind, Kind::LogExportBucket { .. }))
            .count(),
        1
    );
    let c = Catalogue::builtin().unwrap();
    let text = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let p = Policy::parse(&SourceFile::new("policy.toml", text.clone()), Some(&c)).unwrap();
    let all: Vec<Document> = docs.values().cloned().collect();
    let cmds = iam::setup_commands(&p, &all, &principals(false), "iam");
    assert!(
        cmds.contains(&format!(
            "aws s3api put-bucket-policy --bucket {name} --policy file://iam/log-export-bucket-{name}.json"
        )),
        "{cmds:#?}"
    );
    let without = text.replace(&format!("log_export_bucket = \"{name}\"\n"), "");
    assert_ne!(without, text);
    let p = Policy::parse(&SourceFile::new("policy.toml", without), None).unwrap();
    assert!(
        iam::documents(&p, &c, &principals(false))
            .unwrap()
            .iter()
            .all(|d| !d.file.starts_with("log-export-bucket-"))
    );
}

#[test]
fn generated_documents_snapshot() {
    let files = [
        "tools/cancel_request.toml",
        "tools/describe_access.toml",
        "tools/get_request.toml",
        "tools/list_volumes.toml",
        "tools/read_logs.toml",
        "tools/request_delete_volume.toml",
    ];
    let c = Catalogue::from_files(
        airlock::catalogue::BUILTIN
            .iter()
            .filter(|(p, _)| files.contains(p))
            .map(|(p, t)| SourceFile::new(p, *t))
            .collect(),
    )
    .unwrap();
    // The demo policy's rules for those tools (the ones for the wider catalogue follow them).
    let text = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let text = text
        .split("\n# The wider catalogue")
        .next()
        .unwrap()
        .to_string();
    let p = Policy::parse(&SourceFile::new("policy.toml", text), Some(&c)).unwrap();
    let d: BTreeMap<String, Document> = iam::documents(&p, &c, &principals(true))
        .unwrap()
        .into_iter()
        .map(|d| (d.file.clone(), d))
        .collect();
    let all: serde_json::Map<String, Value> = d.into_iter().map(|(f, d)| (f, d.json)).collect();
    insta::assert_json_snapshot!(Value::Object(all));
}

/// A tool added to a tools folder is covered with no change to airlock: its actions appear in
/// the agent role once a rule enables it, and not before.
#[test]
fn new_tools_are_covered_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in airlock::catalogue::BUILTIN {
        let name = Path::new(path).file_name().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(
        dir.path().join("list_db_clusters.toml"),
        r#"name = "list_db_clusters"
description = "List RDS clusters."
risk = "read"

[[arguments]]
name = "environment"
type = "environment"
required = true
description = "The environment."

[[arguments]]
name = "db_instance"
type = "string"
required = true
description = "The instance identifier."
pattern = "^[a-z][a-z0-9-]{0,62}$"
resource = true

[aws]
service = "rds"
protocol = "query"
action = "DescribeDBClusters"
version = "2014-10-31"
iam_actions = ["rds:DescribeDBClusters"]
resources = ["arn:${partition}:rds:${region}:${account}:cluster:${db_instance}"]

[aws.request]
DBClusterIdentifier = "${db_instance}"
"#,
    )
    .unwrap();
    let c = Catalogue::load_dir(dir.path()).unwrap();
    let base = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let docs = |text: &str| {
        let p = Policy::parse(&SourceFile::new("policy.toml", text), Some(&c)).unwrap();
        iam::documents(&p, &c, &principals(false)).unwrap()
    };
    let staging = |docs: Vec<Document>| {
        docs.into_iter()
            .find(|d| d.file == "agent-staging-permissions.json")
            .unwrap()
    };
    assert!(!actions_of(&staging(docs(&base))).contains(&"rds:DescribeDBClusters".into()));
    let enabled = format!(
        "{base}\n[[rules]]\ntools = [\"list_db_clusters\"]\nenvironments = [\"staging\"]\ndecision = \"allow\"\n"
    );
    let d = staging(docs(&enabled));
    assert!(actions_of(&d).contains(&"rds:DescribeDBClusters".into()));
    assert_eq!(
        eval(
            &[&d],
            AGENT_STAGING,
            "rds:DescribeDBClusters",
            "arn:aws:rds:us-east-1:123456789012:cluster:main",
            "us-east-1"
        ),
        Decision::Allow
    );
    assert_ne!(
        eval(
            &[&d],
            AGENT_STAGING,
            "rds:DeleteDBInstance",
            "arn:aws:rds:us-east-1:123456789012:db:main",
            "us-east-1"
        ),
        Decision::Allow
    );
}

fn init_args<'a>(dir: &'a str, endpoint: &'a str) -> Vec<&'a str> {
    vec![
        "init",
        dir,
        "--non-interactive",
        "--env",
        "staging:123456789012:us-east-1",
        "--env",
        "prod:123456789012:us-west-2",
        "--backup-region",
        "us-west-2",
        "--endpoint",
        endpoint,
    ]
}

#[test]
fn init_in_an_empty_folder_then_check_then_the_demo_flow() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("deploy");
    let d = dir.to_str().unwrap();
    let env = moto.airlock_env(home.path());
    let Run { code, out, err } = airlock(&init_args(d, &moto.url), &env);
    assert_eq!(code, 0, "{out}{err}");
    for f in [
        "policy.toml",
        "iam/broker-policy.json",
        "iam/agent-staging-permissions.json",
        "iam/agent-staging-trust.json",
        "iam/agent-prod-permissions.json",
        "iam/agent-boundary.json",
        "iam/executor-staging-permissions.json",
        "iam/executor-staging-trust.json",
        "iam/operator-policy.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing; {out}");
    }
    let policy = dir.join("policy.toml");
    let bin = crate::support::airlock_bin();
    assert!(
        out.contains(&format!(
            "claude mcp add --transport stdio --scope user airlock -- {} serve --policy {}",
            bin.display(),
            std::fs::canonicalize(&policy).unwrap().display()
        )),
        "{out}"
    );
    assert!(
        out.contains("aws iam create-role --role-name airlock-agent-staging"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} policy sign --policy {}",
            bin.display(),
            std::fs::canonicalize(&policy).unwrap().display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} doctor --policy {}",
            bin.display(),
            std::fs::canonicalize(&policy).unwrap().display()
        )),
        "{out}"
    );

    // A second init refuses to overwrite; --force replaces.
    let Run { code, out: _, err } = airlock(&init_args(d, &moto.url), &env);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("already exists"), "{err}");

    let Run { code, out, err } = airlock(
        &["check", "--policy", policy.to_str().unwrap(), "--json"],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["environments"], json!(["prod", "staging"]));

    // `airlock iam` regenerates the same documents from the written policy.
    let again = home.path().join("again");
    let Run { code, out, err } = airlock(
        &[
            "iam",
            "--policy",
            policy.to_str().unwrap(),
            "--out-dir",
            again.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    for entry in std::fs::read_dir(dir.join("iam")).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            std::fs::read_to_string(again.join(p.file_name().unwrap())).unwrap(),
            "{}",
            p.display()
        );
    }

    // The demo flow, as an agent sees it, through the official Python MCP SDK, once an approver
    // has signed the written policy (docs/signed-policy.md).
    let trust = home.path().join("approvers.toml");
    std::fs::write(&trust, "").unwrap();
    crate::support::sign_policy_as_owner(home.path(), &policy, &trust);
    let mut env = env;
    env.push(("AIRLOCK_TRUST".into(), trust.display().to_string()));
    env.push((
        "AIRLOCK_DB".into(),
        home.path().join("queue.db").display().to_string(),
    ));
    let (stdout, stderr) = run_demo_client(&policy, &env);
    let r: Value = serde_json::from_str(&stdout).unwrap();
    let outcome = call_outcomes(&r);
    assert_eq!(
        outcome,
        [
            ("describe_access", false),
            ("list_volumes", false),
            ("list_volumes", false),
            ("read_logs", false),
            // The starter policy lets the agent read every staging log group.
            ("read_logs", false),
            ("list_volumes", true),
            // Allowed in prod, but moto has no such log group.
            ("read_logs", true),
            ("list_volumes", false),
            ("request_delete_volume", false),
            ("request_delete_volume", true),
            ("get_request", false),
        ],
        "{stdout}\n{stderr}"
    );
    let calls = r["calls"].as_array().unwrap();
    assert_eq!(calls[8]["body"]["state"], "pending", "{}", calls[8]);
    assert!(
        calls[9]["body"]["message"]
            .as_str()
            .unwrap()
            .contains("protected"),
        "{}",
        calls[9]
    );
    assert_eq!(
        calls[6]["body"]["aws_code"], "ResourceNotFoundException",
        "{}",
        calls[6]
    );
}

/// The policy `init` writes carries a delete all the way: the agent requests it, a person
/// approves it at a terminal, the executor (operator's credential) backs the volume up, copies
/// the backup to the backup region init set, and deletes it.
#[tokio::test(flavor = "multi_thread")]
async fn an_init_policy_runs_an_approved_delete_end_to_end() {
    let rig = Rig::new(|t| t);
    let deploy = rig.dir.path().join("deploy");
    let Run { code, out, err } = airlock(
        &init_args(deploy.to_str().unwrap(), &rig.moto.url),
        &rig.moto.airlock_env(rig.dir.path()),
    );
    assert_eq!(code, 0, "{out}{err}");
    // The rig's policy becomes init's, with a cooldown a test can wait out.
    let text = std::fs::read_to_string(deploy.join("policy.toml")).unwrap();
    assert!(text.contains("cooldown = \"10m\""), "{text}");
    std::fs::write(
        &rig.policy,
        text.replace("cooldown = \"10m\"", "cooldown = \"2s\""),
    )
    .unwrap();

    // The written policy replaces the rig's: an approver signs it (docs/signed-policy.md).
    let (code, screen) = rig.sign_policy(&rig.owner, None);
    assert_eq!(code, 0, "{screen}");
    let vol = rig.moto.volume("staging_web");
    let agent = rig.agent().await;
    let id = rig.request_delete(&agent, &vol).await;
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &vol, PASS, None);
    assert_eq!(code, 0, "{screen}");
    let done = rig.execute_when_due(&id);
    assert_eq!(done["state"], "executed", "{done}");
    assert!(!rig.volume_exists(&vol));
    let copy = done["outcome"]["copy_snapshot_id"].as_str().unwrap();
    assert_eq!(
        rig.aws(&["snapshot", "us-west-2", copy])["state"],
        "completed"
    );
    let (code, out) = rig.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn generated_documents_keep_broker_agent_and_executor_apart_in_moto() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("deploy");
    let env = moto.airlock_env(home.path());
    let broker = format!("arn:aws:iam::{ACCOUNT}:user/init-broker");
    let operator = format!("arn:aws:iam::{ACCOUNT}:user/init-operator");
    let Run { code, out, err } = airlock(
        &[
            "init",
            dir.to_str().unwrap(),
            "--non-interactive",
            "--env",
            "sandbox:123456789012:us-east-1",
            "--backup-region",
            "us-west-2",
            "--broker-principal",
            &broker,
            "--operator-principal",
            &operator,
            "--endpoint",
            &moto.url,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let seed = home.path().join("seed.json");
    std::fs::write(&seed, moto.seed.to_string()).unwrap();
    let vol = moto.volume("staging_web");
    let r = python_json(|c| {
        c.arg(repo().join("tests/fixtures/apply_iam.py")).args([
            seed.to_str().unwrap(),
            dir.join("iam").to_str().unwrap(),
            "sandbox",
            "init-broker",
            "init-operator",
            &vol,
        ])
    });
    for (check, want) in [
        ("broker_assumes_agent", "ok"),
        ("broker_assumes_executor", "AccessDenied"),
        ("operator_assumes_executor", "ok"),
        ("operator_assumes_agent", "AccessDenied"),
        ("agent_describes_volumes", "ok"),
        ("agent_deletes_volume", "AccessDenied"),
        ("agent_creates_snapshot", "AccessDenied"),
        ("broker_describes_volumes", "AccessDenied"),
        ("broker_deletes_volume", "AccessDenied"),
        ("broker_lists_buckets", "AccessDenied"),
    ] {
        assert_eq!(r[check], want, "{check}: {r}");
    }

    // airlock's own broker, with the generated broker principal's key: its AssumeRole (with the
    // SourceIdentity the agent trust policy requires) reaches the generated agent role, and a
    // read tool works under it.
    let c = Catalogue::builtin().unwrap();
    let policy = Policy::load(&dir.join("policy.toml"), Some(&c)).unwrap();
    let key = &r["keys"]["init-broker"];
    let sts = Arc::new(StsBroker::with_base_credentials(
        policy.session_duration,
        Credentials::new(
            key[0].as_str().unwrap(),
            key[1].as_str().unwrap(),
            None,
            None,
            "test",
        ),
    ));
    let engine = Engine::new(Arc::new(policy), Arc::new(c), sts.clone());
    let ctx = CallContext {
        client_name: "tests".into(),
        client_version: "1".into(),
        session_id: "s1".into(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = rt.block_on(engine.call(
        "list_volumes",
        json!({"environment": "sandbox"}).as_object().unwrap(),
        &ctx,
    ));
    assert!(a.is_ok(), "{a:?}");
    let Ok(airlock::engine::ToolOutput::Listing(l)) = &a else {
        panic!("{a:?}")
    };
    assert!(l.count >= 3, "{l:?}");
    assert_eq!(sts.assume_role_calls(), 1);
}

#[test]
fn init_asks_at_a_terminal() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("deploy");
    let env = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        ),
        ("HOME".to_string(), home.path().display().to_string()),
    ];
    let mut p = pty(&["init", dir.to_str().unwrap()], &env);
    let answers: &[(&str, &str)] = &[
        (
            "Environments, separated by spaces [staging prod]",
            "dev live",
        ),
        ("dev: AWS account id", "12345"),
        ("is not a 12-digit AWS account id", "210987654321"),
        ("dev: region [us-east-1]", "eu-west-1"),
        ("dev: is it production", ""),
        ("dev: agent role name [airlock-agent-dev]", ""),
        ("dev: executor role name", "ops-executor"),
        ("dev: copy backups to region", "eu-central-1"),
        ("dev: S3 bucket in eu-west-1", "Not_A_Bucket"),
        ("is not an S3 bucket name", "dev-log-exports"),
        ("live: AWS account id [210987654321]", ""),
        ("live: region [us-east-1]", "eu-west-1"),
        ("live: is it production", "y"),
        ("live: agent role name [airlock-agent-live]", ""),
        (
            "Broker principal: the IAM user or role `airlock serve` runs as [arn:aws:iam::210987654321:user/airlock-broker]",
            "",
        ),
        (
            "Operator principal",
            "arn:aws:iam::210987654321:role/oncall",
        ),
        ("Require MFA", "y"),
        ("AWS profile with the broker's credential", "dev-broker"),
        ("AWS profile with the operator's credential", ""),
        ("Local AWS endpoint", ""),
        ("Tags that mark resources", "owner=platform env=prod"),
    ];
    for (question, answer) in answers {
        p.exp_string(question)
            .unwrap_or_else(|e| panic!("waiting for `{question}`: {e}"));
        p.send_line(answer).unwrap();
    }
    p.exp_string("Next steps").unwrap();
    p.exp_string("define profile `dev-broker`: create it first")
        .unwrap();
    p.exp_eof().unwrap();

    let policy = dir.join("policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    let c = Catalogue::builtin().unwrap();
    let parsed = Policy::parse(&SourceFile::new(&policy, text.clone()), Some(&c)).unwrap();
    let dev = &parsed.environments["dev"];
    assert_eq!(dev.account, "210987654321");
    assert_eq!(dev.region, "eu-west-1");
    assert_eq!(
        dev.executor_role.as_deref(),
        Some("arn:aws:iam::210987654321:role/ops-executor")
    );
    assert_eq!(dev.backup_region.as_deref(), Some("eu-central-1"));
    assert_eq!(dev.log_export_bucket.as_deref(), Some("dev-log-exports"));
    assert!(dev.require_isolated_backup && dev.endpoint.is_none());
    assert_eq!(dev.profile.as_deref(), Some("dev-broker"));
    assert_eq!(dev.executor_profile, None);
    let live = &parsed.environments["live"];
    assert!(live.executor_role.is_none());
    assert_eq!(
        parsed.protected_tags,
        [
            ("owner".to_string(), "platform".to_string()),
            ("env".to_string(), "prod".to_string())
        ]
    );
    let trust: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("iam/executor-dev-trust.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::210987654321:role/oncall"
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["Bool"]["aws:MultiFactorAuthPresent"],
        "true"
    );
    // The profile the answers named must exist in the AWS config files for check to pass.
    let Run { code, err, .. } = airlock(&["check", "--policy", policy.to_str().unwrap()], &env);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("there is no profile `dev-broker`"), "{err}");
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[dev-broker]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = not-a-real-secret\n",
    )
    .unwrap();
    let Run { code, out, err } = airlock(&["check", "--policy", policy.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn init_without_answers_or_flags_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let env = vec![("HOME".to_string(), home.path().display().to_string())];
    let d = home.path().join("x");
    // stdin is /dev/null: no answers.
    let Run { code, out: _, err } = airlock(&["init", d.to_str().unwrap()], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--non-interactive"), "{err}");
    let Run { code, out: _, err } =
        airlock(&["init", d.to_str().unwrap(), "--non-interactive"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--env NAME:ACCOUNT:REGION"), "{err}");
    let Run { code, out: _, err } = airlock(
        &[
            "init",
            d.to_str().unwrap(),
            "--non-interactive",
            "--env",
            "staging:1234:us-east-1",
        ],
        &env,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("12-digit"), "{err}");
    assert!(!d.join("policy.toml").exists());

    // Bad flag values are refused at the flag (usage, exit 2) with what to write, never as
    // "a bug in airlock init" after the policy is rendered.
    for (flag, value, says) in [
        ("--protect-tag", "novalue", "must be KEY=VALUE"),
        ("--protect-tag", "env=", "must be KEY=VALUE"),
        (
            "--endpoint",
            "notaurl",
            "must be an http:// or https:// URL",
        ),
        (
            "--endpoint",
            "http://",
            "must be an http:// or https:// URL",
        ),
        (
            "--env",
            "staging:123456789012:useast1",
            "not an AWS region name",
        ),
        (
            "--env",
            "staging:123456789012:us-east",
            "not an AWS region name",
        ),
    ] {
        let mut argv = vec![
            "init",
            d.to_str().unwrap(),
            "--non-interactive",
            flag,
            value,
        ];
        if flag != "--env" {
            argv.extend(["--env", "staging:123456789012:us-east-1"]);
        }
        let Run { code, out: _, err } = airlock(&argv, &env);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(
            err.contains(says) && err.contains(value),
            "{flag} {value}: {err}"
        );
        assert!(!err.contains("bug"), "{err}");
        assert!(!d.join("policy.toml").exists());
    }
    // GovCloud and ISO regions have their own shapes, and are accepted.
    for (i, region) in ["us-gov-west-1", "us-isob-east-1", "cn-north-1"]
        .iter()
        .enumerate()
    {
        let dir = home.path().join(format!("r{i}"));
        let env_flag = format!("staging:123456789012:{region}");
        let Run { code, out, err } = airlock(
            &[
                "init",
                dir.to_str().unwrap(),
                "--non-interactive",
                "--env",
                &env_flag,
                "--endpoint",
                "http://127.0.0.1:5000",
                "--protect-tag",
                "team=core",
            ],
            &env,
        );
        assert_eq!(code, 0, "{region}: {out}{err}");
        assert!(
            !err.contains("warning: writing policy.toml into the current folder"),
            "{err}"
        );
    }
    // The default DIR, the current folder, writes there but warns that an agent working in it
    // can edit the policy.
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let o = Command::new(crate::support::airlock_bin())
        .args([
            "init",
            "--non-interactive",
            "--env",
            "staging:123456789012:us-east-1",
        ])
        .current_dir(&project)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: writing policy.toml into the current folder")
            && err.contains("~/.config/airlock"),
        "{err}"
    );
    assert!(project.join("policy.toml").exists());

    // No policy there yet: nothing to connect a client to, and nothing is written (issue 11
    // item 8: this printed a configuration for a missing policy and exited 0).
    let Run { code, err, .. } = airlock(
        &["init", d.to_str().unwrap(), "--print-client", "vscode"],
        &env,
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("does not exist") && err.contains("airlock init"),
        "{err}"
    );
    assert!(!d.join("policy.toml").exists(), "printing writes nothing");
    let Run { code, err, .. } = airlock(
        &[
            "init",
            d.to_str().unwrap(),
            "--non-interactive",
            "--env",
            "staging:123456789012:us-east-1",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    // The client configuration alone on stdout, so `> ~/.cursor/mcp.json` writes valid JSON
    // (item 8: a `# ...` line came first); what it is goes to stderr. Absolute paths.
    let Run { code, out, err } = airlock(
        &["init", d.to_str().unwrap(), "--print-client", "vscode"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let Run { out: cursor, .. } = airlock(
        &["init", d.to_str().unwrap(), "--print-client", "cursor"],
        &env,
    );
    let c: Value = serde_json::from_str(&cursor).unwrap_or_else(|e| panic!("{e}: {cursor}"));
    assert!(c["mcpServers"]["airlock"]["command"].is_string(), "{c}");
    let server = &v["servers"]["airlock"];
    assert_eq!(server["type"], "stdio");
    assert_eq!(
        server["command"],
        std::fs::canonicalize(crate::support::airlock_bin())
            .unwrap()
            .display()
            .to_string()
    );
    let args = server["args"].as_array().unwrap();
    assert_eq!(args[..2], [json!("serve"), json!("--policy")]);
    assert!(Path::new(args[2].as_str().unwrap()).is_absolute());
    assert!(args[2].as_str().unwrap().ends_with("/x/policy.toml"));
    assert_eq!(
        args.len(),
        3,
        "the default trust file needs no flag: {args:?}"
    );
    assert!(err.contains("user configuration"), "{err}");

    // A trust file elsewhere (a team's /etc/airlock/approvers.toml, set in a shell profile a
    // desktop-launched client never reads) is passed to serve on its command line, from the
    // flag or from AIRLOCK_TRUST; the default one is not.
    let default_trust = home.path().join(".config/airlock/approvers.toml");
    for (extra, trust_env, want) in [
        (
            vec!["--trust", "/etc/airlock/approvers.toml"],
            None,
            Some("/etc/airlock/approvers.toml"),
        ),
        (
            vec![],
            Some("/etc/airlock/approvers.toml"),
            Some("/etc/airlock/approvers.toml"),
        ),
        (vec!["--trust", default_trust.to_str().unwrap()], None, None),
    ] {
        let mut env = env.clone();
        if let Some(t) = trust_env {
            env.push(("AIRLOCK_TRUST".into(), t.into()));
        }
        let mut argv = vec!["init", d.to_str().unwrap(), "--print-client", "all"];
        argv.extend(extra.iter().copied());
        let Run { code, out, err } = airlock(&argv, &env);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("# VS Code"), "{err}");
        let vscode = &out[out.rfind("{\n  \"servers\"").unwrap()..];
        let v: Value = serde_json::from_str(vscode).unwrap();
        let args = v["servers"]["airlock"]["args"].as_array().unwrap();
        match want {
            Some(t) => {
                assert_eq!(args[3..], [json!("--trust"), json!(t)], "{out}");
                assert!(
                    out.contains(&format!(
                        "serve --policy {} --trust {t}\n",
                        args[2].as_str().unwrap()
                    )),
                    "{out}"
                );
            }
            None => assert_eq!(args.len(), 3, "{out}"),
        }
    }
}

/// deploy/airlock-executor.service runs a real subcommand with real flags (each one accepted by
/// `airlock executor`, with its value), keeps its hardening, and is the unit the deployment
/// guide shows.
#[test]
fn the_systemd_unit_runs_real_subcommands_and_flags() {
    let unit = std::fs::read_to_string(repo().join("deploy/airlock-executor.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/airlock");
    assert_eq!(words[1], "executor");
    let Run {
        code,
        out: help,
        err,
    } = airlock(&["executor", "--help"], &[]);
    assert_eq!(code, 0, "{err}");
    let flags: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| w.starts_with("--"))
        .collect();
    assert!(flags.len() >= 4, "{exec}");
    for f in &flags {
        assert!(
            help.contains(&format!("{f} <")) || help.contains(&format!("{f}\n")),
            "`airlock executor` has no flag {f}:\n{help}"
        );
    }

    // The same command line, with its files moved into a temp dir and --once, runs: every
    // value parses, and with nothing approved it exits 0.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::copy(repo().join("policy.toml"), &policy).unwrap();
    let trust = dir.path().join("approvers.toml");
    std::fs::write(&trust, "# nobody yet\n").unwrap();
    let db = dir.path().join("queue.db");
    let mut args: Vec<String> = words[1..]
        .iter()
        .map(|w| match *w {
            "/etc/airlock/policy.toml" => policy.display().to_string(),
            "/etc/airlock/approvers.toml" => trust.display().to_string(),
            "/var/lib/airlock/queue.db" => db.display().to_string(),
            other => {
                assert!(
                    !other.starts_with('/'),
                    "unexpected path {other} in ExecStart"
                );
                other.to_string()
            }
        })
        .collect();
    args.push("--once".into());
    let env = vec![
        ("HOME".to_string(), dir.path().display().to_string()),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Run { code, out, err } = airlock(&args, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(db.exists(), "the executor opened the queue at --db");

    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("the unit sets no {key}"))
    };
    assert_eq!(setting("User"), "airlock-exec");
    assert_eq!(setting("NoNewPrivileges"), "yes");
    assert_eq!(setting("ProtectHome"), "yes");
    assert_eq!(setting("ProtectSystem"), "strict");
    assert_eq!(setting("ReadWritePaths"), "/var/lib/airlock");
    assert_eq!(setting("EnvironmentFile"), "/etc/airlock/executor.env");
    assert_eq!(setting("CapabilityBoundingSet"), "");

    // The guide shows this very unit.
    let guide = std::fs::read_to_string(repo().join("docs/deployment.md")).unwrap();
    assert!(
        guide.contains(&unit),
        "docs/deployment.md must include deploy/airlock-executor.service verbatim"
    );

    // systemd's own checker, where the machine has it, with the real binary in ExecStart.
    if let Ok(out) = Command::new("systemd-analyze").arg("--version").output()
        && out.status.success()
    {
        let copy = dir.path().join("airlock-executor.service");
        std::fs::write(
            &copy,
            unit.replace(
                "/usr/local/bin/airlock",
                &crate::support::airlock_bin().display().to_string(),
            ),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// docs/cli.md's row for each command lists every flag its `--help` shows.
#[test]
fn the_cli_page_lists_every_flag_of_each_command() {
    let page = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let commands = [
        "serve",
        "check",
        "tools list",
        "tools check",
        "tools doc",
        "explain",
        "requests list",
        "requests show",
        "approve",
        "deny",
        "cancel",
        "approver init",
        "executor",
        "audit verify",
        "audit show",
        "init",
        "iam",
        "policy sign",
        "policy status",
        "doctor",
    ];
    let flag = regex::Regex::new(r"^\s+(?:-[a-zA-Z], )?(--[a-z][a-z-]*)").unwrap();
    for cmd in commands {
        let mut argv: Vec<&str> = cmd.split(' ').collect();
        argv.push("--help");
        let Run { code, out, err } = airlock(&argv, &[]);
        assert_eq!(code, 0, "{cmd}: {err}");
        let rows: Vec<&str> = page
            .lines()
            .filter(|l| l.starts_with('|') && l.contains(&format!("`airlock {cmd}")))
            .collect();
        assert!(
            !rows.is_empty(),
            "docs/cli.md has no row for `airlock {cmd}`"
        );
        for l in out.lines() {
            let Some(c) = flag.captures(l) else { continue };
            let f = &c[1];
            if f == "--help" {
                continue;
            }
            assert!(
                rows.iter().any(|r| r.contains(&format!("`{f}"))
                    || r.contains(&format!("[{f}"))
                    || r.contains(&format!(" {f} "))
                    || r.contains(&format!(" {f}]"))
                    || r.contains(&format!(" {f}`"))),
                "docs/cli.md's row for `airlock {cmd}` does not list {f}:\n{}",
                rows.join("\n")
            );
        }
    }
}
