//! The built-in inventory tools (EC2 snapshots, RDS, S3, CloudWatch Logs groups, DynamoDB tables,
//! ECS clusters) through the real binary over stdio, against moto with IAM enforcement on; and
//! the scope proof (iam-rs) of each one's session policy: its own action on its own resource allowed, neighbours denied.

use serde_json::{Value, json};

use iam_rs::Decision;

use crate::support::proofs::{DESTRUCTIVE, engine, eval, session_policy};
use crate::support::*;

fn ids(a: &Answer) -> Vec<String> {
    a.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", short(a)))
        .iter()
        .map(|v| v["id"].as_str().or(v["name"].as_str()).unwrap().to_string())
        .collect()
}

fn item<'a>(a: &'a Answer, id: &str) -> &'a Value {
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id || v["name"] == id)
        .unwrap_or_else(|| panic!("{id} missing: {}", short(a)))
}

fn ok(a: Answer) -> Answer {
    assert!(!a.is_error, "{}", short(&a));
    a
}

fn short(a: &Answer) -> String {
    a.text.chars().take(1500).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_tools_answer_under_scoped_sessions() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &repo().join("policy.toml")).await;
    let seed = &moto.seed;
    let snap = |k: &str| seed["snapshots"][k].as_str().unwrap().to_string();

    // EBS snapshots: this account's own, this region's only, protection marked by tag. (moto
    // owns a snapshot for each of its ~1300 AMIs, so the call is narrowed to the seeded volumes.)
    let seeded = ["staging_web", "staging_api", "prod_in_east", "prod_db"].map(|v| moto.volume(v));
    let a = ok(s
        .call(
            "list_snapshots",
            json!({"environment": "staging", "volume_ids": seeded}),
        )
        .await);
    let got = ids(&a);
    for k in ["staging_web", "staging_api", "prod_in_east"] {
        assert!(got.contains(&snap(k)), "{k}: {}", short(&a));
    }
    assert!(!got.contains(&snap("prod_db")), "us-west-2 leaked in");
    let web = item(&a, &snap("staging_web"));
    assert_eq!(web["volume_id"], moto.volume("staging_web"));
    assert_eq!(web["size_gib"], 8);
    assert_eq!(web["state"], "completed");
    assert_eq!(web["tags"]["app"], "web");
    assert_eq!(web["protected"], false);
    assert_eq!(item(&a, &snap("prod_in_east"))["protected"], true);
    assert_eq!(a.body["scope"]["actions"], json!(["ec2:DescribeSnapshots"]));
    let a = ok(s
        .call(
            "list_snapshots",
            json!({"environment": "staging", "volume_ids": [moto.volume("staging_api")]}),
        )
        .await);
    assert_eq!(ids(&a), [snap("staging_api")]);
    let a = ok(s
        .call(
            "list_snapshots",
            json!({"environment": "staging", "snapshot_ids": [snap("staging_web")], "tags": {"app": "web"}}),
        )
        .await);
    assert_eq!(ids(&a), [snap("staging_web")]);
    let a = ok(s
        .call(
            "list_snapshots",
            json!({"environment": "prod", "volume_ids": seeded}),
        )
        .await);
    assert_eq!(ids(&a), [snap("prod_db")]);
    assert_eq!(item(&a, &snap("prod_db"))["protected"], true);
    // Unfiltered, the answer is capped and says so.
    let a = ok(s
        .call("list_snapshots", json!({"environment": "staging"}))
        .await);
    assert!(a.body["count"].as_u64().unwrap() <= 500);
    assert!(
        a.body["truncated"].as_str().is_some(),
        "{}",
        a.body["count"]
    );

    // Log groups: names and settings, an exact name matched exactly.
    let a = ok(s
        .call(
            "list_log_groups",
            json!({"environment": "staging", "prefix": "/app/staging/"}),
        )
        .await);
    let names = ids(&a);
    assert!(
        names.contains(&"/app/staging/api".to_string()),
        "{}",
        short(&a)
    );
    assert!(
        names.contains(&"/app/staging/worker".to_string()),
        "{}",
        short(&a)
    );
    assert!(
        !names.contains(&"/app/other/api".to_string()),
        "{}",
        short(&a)
    );
    assert_eq!(item(&a, "/app/staging/api")["retention_days"], 30);
    assert_eq!(
        item(&a, "/app/staging/worker")["retention_days"],
        "never expires"
    );
    assert!(
        item(&a, "/app/staging/api")["arn"]
            .as_str()
            .unwrap()
            .contains(":log-group:/app/staging/api")
    );
    let a = ok(s
        .call(
            "list_log_groups",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await);
    assert_eq!(ids(&a), ["/app/staging/api"]);
    let a = ok(s
        .call(
            "list_log_groups",
            json!({"environment": "staging", "limit": 2}),
        )
        .await);
    assert_eq!(a.body["count"], 2);
    assert!(
        a.body["truncated"].as_str().unwrap().contains("limit 2"),
        "{}",
        short(&a)
    );

    // RDS instances and snapshots (the query protocol), protection by tag.
    let a = ok(s
        .call("list_db_instances", json!({"environment": "staging"}))
        .await);
    let got = ids(&a);
    assert!(
        got.contains(&"staging-api-db".to_string()) && got.contains(&"prod-ledger-db".to_string()),
        "{}",
        short(&a)
    );
    assert!(
        !got.contains(&"prod-api-db".to_string()),
        "us-west-2 leaked in"
    );
    let db = item(&a, "staging-api-db");
    assert_eq!(db["engine"], "postgres");
    assert_eq!(db["storage_gib"], 20);
    assert_eq!(db["status"], "available");
    assert_eq!(db["backup_retention_days"], 7);
    assert_eq!(db["tags"]["app"], "api");
    assert_eq!(db["protected"], false);
    assert_eq!(item(&a, "prod-ledger-db")["protected"], true);
    let a = ok(s
        .call(
            "list_db_instances",
            json!({"environment": "staging", "db_instance_id": "staging-reports-db"}),
        )
        .await);
    assert_eq!(ids(&a), ["staging-reports-db"]);
    let a = s
        .call(
            "list_db_instances",
            json!({"environment": "staging", "db_instance_id": "no-such-db"}),
        )
        .await;
    assert!(a.is_error);
    assert_eq!(a.body["aws_code"], "DBInstanceNotFound", "{}", short(&a));
    let a = ok(s
        .call("list_db_instances", json!({"environment": "prod"}))
        .await);
    assert_eq!(ids(&a), ["prod-api-db"]);
    assert_eq!(item(&a, "prod-api-db")["protected"], true);

    let a = ok(s
        .call("list_db_snapshots", json!({"environment": "staging", "db_instance_id": "staging-api-db", "snapshot_type": "manual"}))
        .await);
    assert_eq!(ids(&a), ["staging-api-db-before-upgrade"]);
    let snap_item = item(&a, "staging-api-db-before-upgrade");
    assert_eq!(snap_item["db_instance_id"], "staging-api-db");
    assert_eq!(snap_item["status"], "available");
    assert_eq!(snap_item["type"], "manual");
    assert_eq!(snap_item["tags"]["env"], "staging");

    // S3 (rest-xml): the region's buckets, then one bucket's protection in three requests.
    let b = |k: &str| seed["buckets"][k].as_str().unwrap().to_string();
    let a = ok(s
        .call("list_buckets", json!({"environment": "staging"}))
        .await);
    let got = ids(&a);
    for k in ["locked", "plain", "log_exports"] {
        assert!(got.contains(&b(k)), "{k}: {}", short(&a));
    }
    assert!(
        !got.contains(&b("prod")),
        "a us-west-2 bucket in a us-east-1 listing: {}",
        short(&a)
    );
    assert_eq!(item(&a, &b("plain"))["protected"], false);
    let a = ok(s.call("list_buckets", json!({"environment": "prod"})).await);
    assert_eq!(ids(&a), [b("prod")]);
    let a = ok(s
        .call(
            "list_buckets",
            json!({"environment": "staging", "prefix": "airlock-staging-b"}),
        )
        .await);
    assert_eq!(ids(&a), [b("locked")]);

    let a = ok(s
        .call(
            "get_bucket_protection",
            json!({"environment": "staging", "bucket": b("locked")}),
        )
        .await);
    let p = &a.body["items"][0];
    assert_eq!(p["versioning"], "Enabled", "{}", short(&a));
    assert_eq!(p["object_lock"], "Enabled");
    assert_eq!(p["object_lock_mode"], "COMPLIANCE");
    assert_eq!(p["object_lock_days"], 30);
    assert_eq!(p["lifecycle_rules"][0]["id"], "expire-old-versions");
    assert_eq!(p["lifecycle_rules"][0]["status"], "Enabled");
    assert_eq!(p["lifecycle_rules"][0]["prefix"], "db/");
    assert_eq!(p["lifecycle_rules"][0]["noncurrent_expiration_days"], 90);
    assert_eq!(
        a.body["scope"]["resources"],
        json!([format!("arn:aws:s3:::{}", b("locked"))])
    );
    // Nothing configured is an answer, not an error.
    let a = ok(s
        .call(
            "get_bucket_protection",
            json!({"environment": "staging", "bucket": b("plain")}),
        )
        .await);
    let p = &a.body["items"][0];
    assert_eq!(p["versioning"], "not configured", "{}", short(&a));
    assert_eq!(p["object_lock"], "not configured");
    assert_eq!(p["object_lock_mode"], "not configured");
    assert_eq!(p["lifecycle_rules"], "not configured");
    // A bucket that does not exist is an error that says so.
    let a = s
        .call(
            "get_bucket_protection",
            json!({"environment": "staging", "bucket": "no-such-bucket-here"}),
        )
        .await;
    assert!(a.is_error);
    assert_eq!(a.body["aws_code"], "NoSuchBucket", "{}", short(&a));
    // A wildcard or another account's ARN cannot be smuggled in through the name.
    let a = s
        .call(
            "get_bucket_protection",
            json!({"environment": "staging", "bucket": "*"}),
        )
        .await;
    assert_eq!(a.body["error"], "invalid_argument", "{}", short(&a));
}

/// The awsJson protocol against two more services: DynamoDB (awsJson 1.0) and ECS (1.1), each
/// through the real binary under a scoped session, with moto's IAM enforcement on. Each lists
/// exactly its environment's region.
#[tokio::test(flavor = "multi_thread")]
async fn json_protocol_tools_list_dynamodb_tables_and_ecs_clusters_by_region() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &repo().join("policy.toml")).await;
    let seed = &moto.seed;
    let names = |v: &Value| -> Vec<String> {
        let mut v: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let sorted = |a: &Answer| {
        let mut v = ids(a);
        v.sort();
        v
    };

    let a = ok(s
        .call("list_dynamodb_tables", json!({"environment": "staging"}))
        .await);
    assert_eq!(
        sorted(&a),
        names(&seed["dynamodb_tables"]["us-east-1"]),
        "{}",
        short(&a)
    );
    assert_eq!(item(&a, "staging-orders")["protected"], false);
    assert_eq!(a.body["scope"]["actions"], json!(["dynamodb:ListTables"]));
    let a = ok(s
        .call("list_dynamodb_tables", json!({"environment": "prod"}))
        .await);
    assert_eq!(sorted(&a), ["prod-ledger"], "{}", short(&a));
    // The limit argument caps the answer, and the answer says so.
    let a = ok(s
        .call(
            "list_dynamodb_tables",
            json!({"environment": "staging", "limit": 1}),
        )
        .await);
    assert_eq!(ids(&a).len(), 1, "{}", short(&a));
    assert!(a.body["truncated"].as_str().is_some(), "{}", short(&a));

    let arn = |c: &str| seed["ecs_clusters"][c].as_str().unwrap().to_string();
    let a = ok(s
        .call("list_ecs_clusters", json!({"environment": "staging"}))
        .await);
    let mut want = vec![arn("staging-web"), arn("staging-batch")];
    want.sort();
    assert_eq!(sorted(&a), want, "{}", short(&a));
    assert_eq!(a.body["scope"]["actions"], json!(["ecs:ListClusters"]));
    let a = ok(s
        .call("list_ecs_clusters", json!({"environment": "prod"}))
        .await);
    assert_eq!(ids(&a), [arn("prod-core")], "{}", short(&a));
    assert!(arn("prod-core").contains(":us-west-2:"));
}

/// get_bucket_protection names its bucket in an argument, so a bucket listed under
/// [protected] ids is refused before anything runs (no session policy, no credential): an
/// answer is never about a protected-by-id bucket, which is why it carries no `protected` mark
/// (docs/tools.md). Any other bucket is allowed.
#[test]
fn bucket_protection_of_a_protected_bucket_is_refused_before_it_runs() {
    let mut e = engine("us-east-1");
    let mut policy = (*e.policy).clone();
    policy.protected_ids.push("airlock-staging-backups".into());
    e.policy = std::sync::Arc::new(policy);
    let call = |bucket: &str| {
        let args = json!({"environment": "staging", "bucket": bucket});
        e.plan("get_bucket_protection", args.as_object().unwrap())
            .unwrap()
            .1
    };
    let plan = call("airlock-staging-backups");
    assert_eq!(plan.verdict.decision, airlock::policy::Decision::Deny);
    assert_eq!(plan.verdict.matched, "protected resources");
    assert!(plan.session_policy.is_none());
    let plan = call("airlock-staging-backups2");
    assert_eq!(plan.verdict.decision, airlock::policy::Decision::Allow);
    assert!(plan.session_policy.is_some());
}

/// The list tools whose action has no useful resource-level permission: allowed on "*" in the
/// environment's region only, and nothing else.
#[test]
fn inventory_policies_allow_their_one_read_action_in_their_region_only() {
    let e = engine("us-east-1");
    for (tool, action, args, others) in [
        (
            "list_snapshots",
            "ec2:DescribeSnapshots",
            json!({"environment": "staging", "volume_ids": ["vol-0123456789abcdef0"]}),
            &[
                "ec2:DescribeVolumes",
                "ec2:DeleteSnapshot",
                "ec2:CopySnapshot",
                "ec2:ModifySnapshotAttribute",
            ][..],
        ),
        (
            "list_log_groups",
            "logs:DescribeLogGroups",
            json!({"environment": "staging", "prefix": "/app/staging/"}),
            &[
                "logs:FilterLogEvents",
                "logs:GetLogEvents",
                "logs:CreateExportTask",
            ][..],
        ),
        (
            "list_db_instances",
            "rds:DescribeDBInstances",
            json!({"environment": "staging", "db_instance_id": "staging-api-db"}),
            &[
                "rds:DescribeDBSnapshots",
                "rds:ModifyDBInstance",
                "rds:RebootDBInstance",
                "rds:CreateDBSnapshot",
            ][..],
        ),
        (
            "list_db_snapshots",
            "rds:DescribeDBSnapshots",
            json!({"environment": "staging"}),
            &[
                "rds:DescribeDBInstances",
                "rds:DeleteDBSnapshot",
                "rds:RestoreDBInstanceFromDBSnapshot",
            ][..],
        ),
        (
            "list_buckets",
            "s3:ListAllMyBuckets",
            json!({"environment": "staging"}),
            &["s3:ListBucket", "s3:GetObject", "s3:GetBucketVersioning"][..],
        ),
        (
            "list_dynamodb_tables",
            "dynamodb:ListTables",
            json!({"environment": "staging"}),
            &[
                "dynamodb:DescribeTable",
                "dynamodb:Scan",
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:DeleteTable",
                "dynamodb:UpdateTable",
            ][..],
        ),
        (
            "list_ecs_clusters",
            "ecs:ListClusters",
            json!({"environment": "staging"}),
            &[
                "ecs:DescribeClusters",
                "ecs:ListServices",
                "ecs:DeleteCluster",
                "ecs:UpdateService",
                "ecs:RunTask",
            ][..],
        ),
    ] {
        let p = session_policy(&e, tool, args);
        let doc: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(doc["Statement"][0]["Action"], json!([action]), "{tool}");
        assert_eq!(
            eval(&p, action, "*", "us-east-1"),
            Decision::Allow,
            "{tool}"
        );
        assert_eq!(
            eval(&p, action, "*", "us-west-2"),
            Decision::NotApplicable,
            "{tool}"
        );
        for a in DESTRUCTIVE.iter().chain(others) {
            assert_eq!(
                eval(&p, a, "*", "us-east-1"),
                Decision::NotApplicable,
                "{tool}: {a}"
            );
        }
    }
}

/// get_bucket_protection: its three read actions on its own bucket, nothing on any other
/// bucket, on the bucket's objects, or any write.
#[test]
fn bucket_protection_policy_names_only_its_bucket() {
    let e = engine("us-east-1");
    let p = session_policy(
        &e,
        "get_bucket_protection",
        json!({"environment": "staging", "bucket": "airlock-staging-backups"}),
    );
    let own = "arn:aws:s3:::airlock-staging-backups";
    let reads = [
        "s3:GetBucketVersioning",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetLifecycleConfiguration",
    ];
    for a in reads {
        assert_eq!(eval(&p, a, own, "us-east-1"), Decision::Allow, "{a}");
        for other in [
            "arn:aws:s3:::airlock-staging-backups2",
            "arn:aws:s3:::airlock-staging",
            "arn:aws:s3:::airlock-prod-data",
            "arn:aws:s3:::airlock-staging-backups/db/dump.sql",
        ] {
            assert_eq!(
                eval(&p, a, other, "us-east-1"),
                Decision::NotApplicable,
                "{a} {other}"
            );
        }
    }
    for a in DESTRUCTIVE.iter().chain(&[
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutBucketVersioning",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketObjectLockConfiguration",
        "s3:GetBucketPolicy",
    ]) {
        assert_eq!(
            eval(&p, a, own, "us-east-1"),
            Decision::NotApplicable,
            "{a}"
        );
    }
    let doc: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(doc["Statement"][0]["Resource"], json!([own]));
}
