//! Scope proofs with an independent evaluator (iam-rs). moto does not apply session policies,
//! resource ARNs or conditions, so the session policy airlock sends is evaluated here: it must
//! allow the call's own action on its own resource, and deny the same action on a neighbouring
//! resource, in another region, and every destructive action.

use crate::support::proofs::*;
use crate::support::*;
use iam_rs::Decision;
use proptest::prelude::*;
use serde_json::{Value, json};

const LOGS_ARN: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/api";

#[test]
fn read_logs_policy_allows_only_its_own_log_group() {
    let p = session_policy(
        &engine("us-east-1"),
        "read_logs",
        json!({"environment": "staging", "log_group": "/app/staging/api"}),
    );
    assert_eq!(
        eval(&p, "logs:FilterLogEvents", LOGS_ARN, "us-east-1"),
        Decision::Allow
    );
    assert_eq!(
        eval(
            &p,
            "logs:FilterLogEvents",
            &format!("{LOGS_ARN}:*"),
            "us-east-1"
        ),
        Decision::Allow
    );
    // Neighbours: another group, a prefix of this one, a longer name, another account.
    for other in [
        "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/worker",
        "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging",
        "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/api2",
        "arn:aws:logs:us-east-1:210987654321:log-group:/app/staging/api",
    ] {
        assert_eq!(
            eval(&p, "logs:FilterLogEvents", other, "us-east-1"),
            Decision::NotApplicable,
            "{other}"
        );
    }
    // Another region.
    assert_eq!(
        eval(
            &p,
            "logs:FilterLogEvents",
            "arn:aws:logs:us-west-2:123456789012:log-group:/app/staging/api",
            "us-west-2"
        ),
        Decision::NotApplicable
    );
    // Other actions on its own resource.
    for a in DESTRUCTIVE
        .iter()
        .chain(&["logs:GetLogEvents", "logs:StartQuery"])
    {
        assert_eq!(
            eval(&p, a, LOGS_ARN, "us-east-1"),
            Decision::NotApplicable,
            "{a}"
        );
    }
}

#[test]
fn list_volumes_policy_allows_describe_in_its_region_only() {
    let p = session_policy(
        &engine("us-east-1"),
        "list_volumes",
        json!({"environment": "staging"}),
    );
    assert_eq!(
        eval(&p, "ec2:DescribeVolumes", "*", "us-east-1"),
        Decision::Allow
    );
    assert_eq!(
        eval(&p, "ec2:DescribeVolumes", "*", "us-west-2"),
        Decision::NotApplicable
    );
    let vol = "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0";
    for a in DESTRUCTIVE
        .iter()
        .chain(&["ec2:DescribeInstances", "ec2:DescribeSnapshots"])
    {
        assert_eq!(
            eval(&p, a, vol, "us-east-1"),
            Decision::NotApplicable,
            "{a}"
        );
        assert_eq!(
            eval(&p, a, "*", "us-east-1"),
            Decision::NotApplicable,
            "{a}"
        );
    }
}

/// The proofs above are about the policy airlock renders; this ties them to what it sent: the
/// hash the real server reports for a real call is the hash of the document `explain` prints,
/// and that document passes the same proof.
#[tokio::test(flavor = "multi_thread")]
async fn the_policy_sent_is_the_policy_proven() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &repo().join("policy.toml")).await;
    let args = json!({"environment": "staging", "log_group": "/app/staging/api"});
    let a = s.call("read_logs", args.clone()).await;
    assert!(!a.is_error, "{}", a.text);
    let sent_hash = a.body["scope"]["session_policy_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let Run { code, out, err } = airlock(
        &[
            "explain",
            "--policy",
            repo().join("policy.toml").to_str().unwrap(),
            "read_logs",
            &args.to_string(),
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["session_policy"]["hash"], json!(sent_hash));
    let doc = plan["session_policy"]["json"].as_str().unwrap();
    assert_eq!(
        eval(doc, "logs:FilterLogEvents", LOGS_ARN, "us-east-1"),
        Decision::Allow
    );
    assert_eq!(
        eval(doc, "logs:DeleteLogGroup", LOGS_ARN, "us-east-1"),
        Decision::NotApplicable
    );
    assert_eq!(
        eval(
            doc,
            "logs:FilterLogEvents",
            "arn:aws:logs:us-east-1:123456789012:log-group:/app/other/api",
            "us-east-1"
        ),
        Decision::NotApplicable
    );
}

fn regions() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "ap-southeast-2",
        "sa-east-1",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No rendered policy has a wildcard action or names a resource other than the validated
    /// one; each allows its own call and denies the neighbour and the other regions.
    #[test]
    fn rendered_policies_stay_in_scope(
        // Canonical names only (no empty, `.` or `..` segment, no trailing `/`): the others
        // are refused before any policy is rendered.
        group in "/app/staging/[A-Za-z0-9_#-][A-Za-z0-9_.#-]{0,19}(/[A-Za-z0-9_#-][A-Za-z0-9_.#-]{0,19}){0,2}",
        region in regions(),
        other in regions(),
    ) {
        let e = engine(region);
        let p = session_policy(&e, "read_logs", json!({"environment": "staging", "log_group": group}));
        let doc: Value = serde_json::from_str(&p).unwrap();
        let st = &doc["Statement"][0];
        let actions: Vec<&str> = st["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        prop_assert_eq!(&actions, &["logs:FilterLogEvents"]);
        prop_assert!(actions.iter().all(|a| !a.contains('*') && !a.contains('?')));
        let own = format!("arn:aws:logs:{region}:123456789012:log-group:{group}");
        let resources: Vec<&str> = st["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        let own_sub = format!("{own}:*");
        prop_assert_eq!(resources, vec![own.as_str(), own_sub.as_str()]);
        prop_assert_eq!(eval(&p, "logs:FilterLogEvents", &own, region), Decision::Allow);
        let neighbour = format!("arn:aws:logs:{region}:123456789012:log-group:{group}x");
        prop_assert_eq!(eval(&p, "logs:FilterLogEvents", &neighbour, region), Decision::NotApplicable);
        if other != region {
            let there = format!("arn:aws:logs:{other}:123456789012:log-group:{group}");
            prop_assert_eq!(eval(&p, "logs:FilterLogEvents", &there, other), Decision::NotApplicable);
        }
        for a in DESTRUCTIVE {
            prop_assert_eq!(eval(&p, a, &own, region), Decision::NotApplicable);
        }

        let p = session_policy(&e, "list_volumes", json!({"environment": "staging"}));
        let doc: Value = serde_json::from_str(&p).unwrap();
        prop_assert_eq!(&doc["Statement"][0]["Action"], &json!(["ec2:DescribeVolumes"]));
        prop_assert_eq!(&doc["Statement"][0]["Condition"]["StringEquals"]["aws:RequestedRegion"], &json!(region));
    }
}

/// The executor deletes under a session policy naming only the approved volume and
/// `ec2:DeleteVolume` (the executor role itself may do more: snapshot, copy, describe).
#[test]
fn the_executors_delete_policy_allows_only_the_approved_volume() {
    let e = engine("us-east-1");
    let vol = "vol-0123456789abcdef0";
    let p = session_policy(
        &e,
        "request_delete_volume",
        json!({"environment": "staging", "volume_id": vol, "reason": "r"}),
    );
    let own = format!("arn:aws:ec2:us-east-1:123456789012:volume/{vol}");
    assert_eq!(
        eval(&p, "ec2:DeleteVolume", &own, "us-east-1"),
        Decision::Allow
    );
    for other in [
        "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef1",
        "arn:aws:ec2:us-east-1:123456789012:volume/vol-01234567",
        "arn:aws:ec2:us-east-1:210987654321:volume/vol-0123456789abcdef0",
    ] {
        assert_eq!(
            eval(&p, "ec2:DeleteVolume", other, "us-east-1"),
            Decision::NotApplicable,
            "{other}"
        );
    }
    assert_eq!(
        eval(
            &p,
            "ec2:DeleteVolume",
            "arn:aws:ec2:us-west-2:123456789012:volume/vol-0123456789abcdef0",
            "us-west-2"
        ),
        Decision::NotApplicable
    );
    for a in DESTRUCTIVE.iter().filter(|a| **a != "ec2:DeleteVolume") {
        assert_eq!(
            eval(&p, a, &own, "us-east-1"),
            Decision::NotApplicable,
            "{a}"
        );
    }
    let doc: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(doc["Statement"][0]["Action"], json!(["ec2:DeleteVolume"]));
    assert_eq!(doc["Statement"][0]["Resource"], json!([own]));
}
