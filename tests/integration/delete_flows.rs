//! The destructive tools beyond volumes, end to end against moto with IAM enforcement on, the
//! real binary, a real SQLite queue and approvals typed at a real terminal: the agent requests
//! over MCP, a person approves, the executor waits out the cooldown, takes the backup the tool
//! file declares (a snapshot copy in the backup region, a final DB snapshot copied there, a
//! log export to S3) and deletes. Every session policy the executor sent is proven with iam-rs:
//! its own actions on this request's own resources, nothing on the neighbours; and each
//! (action, resource, region) it sent is allowed by the executor role `airlock iam` generates.

use std::time::{Duration, Instant};

use iam_rs::Decision;
use serde_json::{Value, json};

use crate::support::proofs::{DESTRUCTIVE, engine, eval, session_policy};
use crate::support::*;

/// The agent asks; the request is pending.
async fn request(agent: &Server, tool: &str, args: Value) -> String {
    let a = agent.call(tool, args).await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(a.body["state"], "pending", "{}", a.text);
    a.body["request_id"].as_str().unwrap().to_string()
}

/// The agent asks; policy refuses outright (nothing is queued).
async fn refused(agent: &Server, tool: &str, args: Value) -> Answer {
    let a = agent.call(tool, args).await;
    assert_eq!(a.body["error"], "refused", "{}", a.text);
    a
}

/// Approve at a terminal (typing the resource id), then run the executor until the request is
/// done; returns the request and everything the executor printed.
fn approve_and_execute(rig: &Rig, id: &str, resource: &str) -> (Value, String) {
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(id, &key, resource, PASS, None);
    assert_eq!(code, 0, "{screen}");
    assert_eq!(rig.state(id), "approved");
    run_until_done(rig, id, &[])
}

fn run_until_done(rig: &Rig, id: &str, extra: &[(&str, &str)]) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut log = String::new();
    loop {
        let Run { code, out, err } = rig.executor_once(extra);
        log.push_str(&out);
        log.push_str(&err);
        assert!(code == 0 || code == 4, "executor: {out}{err}");
        let v = rig.show(id);
        if !matches!(v["state"].as_str(), Some("approved" | "executing")) {
            return (v, log);
        }
        assert!(Instant::now() < deadline, "never finished: {v}\n{log}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The session policies the executor sent (logged at debug level), in order.
fn policies_sent(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| {
            let i = l.find("policy={\"Version\"")?;
            let rest = &l[i + "policy=".len()..];
            let end = rest.find("}]}")? + 3;
            serde_json::from_str(&rest[..end]).ok()
        })
        .collect()
}

fn actions(p: &Value) -> Vec<String> {
    p["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn resources(p: &Value) -> Vec<String> {
    p["Statement"][0]["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Every policy the executor sent: each allows exactly its one action on its own resources
/// (which must be among `own`, or "*" for the Describe actions that have no resource-level
/// permission) in its region, denies it on every `neighbour`, and allows no destructive action
/// but `delete` (and only on its own resource).
fn prove_executor_policies(log: &str, own: &[String], neighbours: &[String], delete: &str) {
    let sent = policies_sent(log);
    assert!(sent.len() >= 3, "the executor's policies are logged: {log}");
    for p in &sent {
        let text = p.to_string();
        let region = p["Statement"][0]["Condition"]["StringEquals"]["aws:RequestedRegion"]
            .as_str()
            .unwrap()
            .to_string();
        let acts = actions(p);
        assert_eq!(acts.len(), 1, "one action per step: {p}");
        let act = &acts[0];
        for r in resources(p) {
            if r == "*" {
                assert!(act.contains(":Describe"), "only Describe actions on *: {p}");
                continue;
            }
            assert!(own.contains(&r), "{r} is not this request's: {p}");
            assert_eq!(eval(&text, act, &r, &region), Decision::Allow, "{p}");
            assert_ne!(
                eval(&text, act, &r, "ap-southeast-2"),
                Decision::Allow,
                "another region: {p}"
            );
        }
        if resources(p) == ["*"] {
            // Describe actions without resource-level permissions: region-bound only.
            continue;
        }
        for n in neighbours {
            assert_ne!(eval(&text, act, n, &region), Decision::Allow, "{n}: {p}");
        }
        for d in DESTRUCTIVE.iter().filter(|d| **d != delete) {
            for r in resources(p).iter().filter(|r| *r != "*") {
                assert_ne!(eval(&text, d, r, &region), Decision::Allow, "{d}: {p}");
            }
        }
    }
    assert!(
        sent.iter().any(|p| actions(p) == [delete]),
        "the delete itself ran under its own policy"
    );
}

/// Every (action, resource, region) the executor sent is allowed by the executor role
/// `airlock iam` generates for the rig's policy (`executor-staging-permissions.json`), proven
/// with iam-rs: the generated role holds what the flow really needs, not only on EBS.
fn prove_generated_executor_role_allows(rig: &Rig, log: &str) {
    let catalogue = airlock::catalogue::Catalogue::builtin().unwrap();
    let text = std::fs::read_to_string(&rig.policy).unwrap();
    let policy = airlock::policy::Policy::parse(
        &airlock::config::source::SourceFile::new(&rig.policy, text),
        Some(&catalogue),
    )
    .unwrap();
    let principals = airlock::iam::Principals {
        broker: "arn:aws:iam::123456789012:user/airlock-broker".into(),
        operator: Some("arn:aws:iam::123456789012:user/airlock-operator".into()),
        require_mfa: false,
    };
    let docs = airlock::iam::documents(&policy, &catalogue, &principals).unwrap();
    let role = docs
        .iter()
        .find(|d| d.file == "executor-staging-permissions.json")
        .expect("an executor role for staging");
    let role_text = role.json.to_string();
    let sent = policies_sent(log);
    assert!(sent.len() >= 3, "the executor's policies are logged: {log}");
    let mut checked = 0;
    for p in &sent {
        let region = p["Statement"][0]["Condition"]["StringEquals"]["aws:RequestedRegion"]
            .as_str()
            .unwrap();
        for act in actions(p) {
            for r in resources(p) {
                assert_eq!(
                    eval(&role_text, &act, &r, region),
                    Decision::Allow,
                    "the generated executor role does not allow {act} on {r} in {region} (sent: {p})\nrole: {role_text}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "{checked}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_is_copied_to_the_backup_region_then_deleted() {
    let rig = Rig::new(short_cooldown);
    let snap = rig.moto.seed["snapshots"]["staging_web"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = rig.agent().await;
    let id = request(
        &agent,
        "request_delete_snapshot",
        json!({"environment": "staging", "snapshot_id": snap, "reason": "superseded by the nightly snapshot"}),
    )
    .await;
    let Run {
        code: _,
        out: shown,
        err: _,
    } = rig.cli(&["requests", "show", &id]);
    assert!(
        shown.contains("a copy of the snapshot in us-west-2, before the action"),
        "{shown}"
    );

    // A crash right after the backup: the restart deletes without copying again.
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &snap, PASS, None);
    assert_eq!(code, 0, "{screen}");
    rig.wait_until_due(&id);
    let Run { code, out, err } = rig.executor_once(&[("AIRLOCK_FAULT", "kill-after-backup")]);
    assert_eq!(code, -1, "the executor was not killed: {out}{err}");
    let mut log = format!("{out}{err}");
    assert_eq!(rig.state(&id), "executing");
    assert_eq!(
        rig.aws(&["snapshot", "us-east-1", &snap])["exists"],
        true,
        "deleted before the crash point"
    );
    let (v, more) = run_until_done(&rig, &id, &[]);
    log.push_str(&more);
    assert!(more.contains("already complete (resuming)"), "{more}");
    assert_eq!(v["state"], "executed", "{v}\n{log}");
    let copy = v["outcome"]["copy_snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        rig.aws(&["snapshot", "us-west-2", &copy])["state"],
        "completed"
    );
    assert_eq!(rig.aws(&["snapshot", "us-east-1", &snap])["exists"], false);
    let copies = rig.aws(&["snapshots-described", "us-west-2", &id]);
    assert_eq!(
        copies.as_array().unwrap().len(),
        1,
        "one copy only: {copies}"
    );

    let own = vec![
        format!("arn:aws:ec2:us-east-1::snapshot/{snap}"),
        "arn:aws:ec2:us-west-2::snapshot/*".to_string(),
    ];
    let other = rig.moto.seed["snapshots"]["staging_api"].as_str().unwrap();
    let neighbours = vec![
        format!("arn:aws:ec2:us-east-1::snapshot/{other}"),
        format!(
            "arn:aws:ec2:us-east-1:123456789012:volume/{}",
            rig.moto.volume("staging_web")
        ),
    ];
    prove_executor_policies(&log, &own, &neighbours, "ec2:DeleteSnapshot");
    prove_generated_executor_role_allows(&rig, &log);

    // Protected (tagged env=prod) and prod snapshots are refused before anything is queued.
    let prot = rig.moto.seed["snapshots"]["prod_in_east"].as_str().unwrap();
    let a = agent
        .call(
            "request_delete_snapshot",
            json!({"environment": "staging", "snapshot_id": prot, "reason": "r"}),
        )
        .await;
    assert!(a.is_error);
    assert!(
        a.body["message"].as_str().unwrap().contains("protected"),
        "{}",
        a.text
    );
    let a = refused(
        &agent,
        "request_delete_snapshot",
        json!({"environment": "prod", "snapshot_id": snap, "reason": "r"}),
    )
    .await;
    assert!(a.text.contains("platform team"), "{}", a.text);
    // A snapshot that does not exist is not queued.
    let a = agent
        .call("request_delete_snapshot", json!({"environment": "staging", "snapshot_id": "snap-0123456789abcdef0", "reason": "r"}))
        .await;
    assert_eq!(a.body["error"], "not_found", "{}", a.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_db_instance_gets_a_final_snapshot_copied_out_then_is_deleted() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let db = "staging-reports-db";
    let id = request(
        &agent,
        "request_delete_db_instance",
        json!({"environment": "staging", "db_instance_id": db, "reason": "reports moved to the warehouse"}),
    )
    .await;
    let Run {
        code: _,
        out: shown,
        err: _,
    } = rig.cli(&["requests", "show", &id]);
    assert!(
        shown.contains(&format!(
            "final DB snapshot airlock-{id} in us-east-1, copied to us-west-2"
        )),
        "{shown}"
    );
    let (v, log) = approve_and_execute(&rig, &id, db);
    assert_eq!(v["state"], "executed", "{v}\n{log}");
    assert_eq!(rig.aws(&["db", "us-east-1", db])["exists"], false);
    let name = format!("airlock-{id}");
    let here = rig.aws(&["db-snapshot", "us-east-1", &name]);
    assert_eq!(here["status"], "available", "{here}");
    assert_eq!(here["db_instance_id"], db);
    let there = rig.aws(&["db-snapshot", "us-west-2", &name]);
    assert_eq!(there["status"], "available", "{there}");
    assert_eq!(v["outcome"]["snapshot_id"], json!(name));
    // The neighbour is untouched.
    assert_eq!(
        rig.aws(&["db", "us-east-1", "staging-api-db"])["exists"],
        true
    );

    let own = vec![
        format!("arn:aws:rds:us-east-1:123456789012:db:{db}"),
        format!("arn:aws:rds:us-east-1:123456789012:snapshot:{name}"),
        format!("arn:aws:rds:us-west-2:123456789012:snapshot:{name}"),
    ];
    let neighbours = vec![
        "arn:aws:rds:us-east-1:123456789012:db:staging-api-db".to_string(),
        "arn:aws:rds:us-east-1:123456789012:snapshot:staging-api-db-before-upgrade".to_string(),
        format!("arn:aws:rds:us-east-1:210987654321:db:{db}"),
    ];
    prove_executor_policies(&log, &own, &neighbours, "rds:DeleteDBInstance");
    prove_generated_executor_role_allows(&rig, &log);

    // Protected by tag, and prod: refused.
    let a = agent
        .call(
            "request_delete_db_instance",
            json!({"environment": "staging", "db_instance_id": "prod-ledger-db", "reason": "r"}),
        )
        .await;
    assert!(
        a.body["message"].as_str().unwrap().contains("protected"),
        "{}",
        a.text
    );
    refused(
        &agent,
        "request_delete_db_instance",
        json!({"environment": "prod", "db_instance_id": "prod-api-db", "reason": "r"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_group_is_exported_to_s3_then_deleted() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let group = "/app/staging/old-batch";
    let a = agent
        .call(
            "request_delete_log_group",
            json!({"environment": "staging", "log_group": group, "reason": "the batch job was retired"}),
        )
        .await;
    assert_eq!(a.body["state"], "pending", "{}", a.text);
    let id = a.body["request_id"].as_str().unwrap().to_string();
    let bucket = rig.moto.seed["buckets"]["log_exports"]
        .as_str()
        .unwrap()
        .to_string();
    // The agent is told where the log group's events go before it is deleted.
    let next = a.body["what_happens_next"].to_string();
    let at = format!("s3://{bucket}/airlock/{id}");
    assert!(
        next.contains(&format!("every event exported to {at}")),
        "{next}"
    );
    assert!(!next.contains("snapshot"), "{next}");
    assert_eq!(a.body["backup"]["kind"], "logs_export", "{}", a.text);
    assert_eq!(a.body["backup"]["kept_in"], json!(at), "{}", a.text);
    let Run {
        code: _,
        out: shown,
        err: _,
    } = rig.cli(&["requests", "show", &id]);
    assert!(
        shown.contains(&format!("exported to s3://{bucket}/airlock/{id}")),
        "{shown}"
    );
    let (v, log) = approve_and_execute(&rig, &id, group);
    assert_eq!(v["state"], "executed", "{v}\n{log}");
    assert_eq!(rig.aws(&["log-group", group])["exists"], false);
    assert_eq!(rig.aws(&["log-group", "/app/staging/api"])["exists"], true);
    let objects = rig.aws(&["s3-objects", &bucket, &format!("airlock/{id}/")]);
    let text: String = objects
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        text.contains("batch run 41 done") && text.contains("batch run 42 done"),
        "{objects}"
    );

    let arn = format!("arn:aws:logs:us-east-1:123456789012:log-group:{group}");
    let own = vec![arn.clone(), format!("{arn}:*")];
    let neighbours = vec![
        "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/api".to_string(),
        "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/old-batch2".to_string(),
    ];
    prove_executor_policies(&log, &own, &neighbours, "logs:DeleteLogGroup");
    prove_generated_executor_role_allows(&rig, &log);

    // Outside the rule's groups, and in prod: refused.
    refused(
        &agent,
        "request_delete_log_group",
        json!({"environment": "staging", "log_group": "/app/other/api", "reason": "r"}),
    )
    .await;
    refused(
        &agent,
        "request_delete_log_group",
        json!({"environment": "prod", "log_group": "/app/prod/api", "reason": "r"}),
    )
    .await;
}

/// Without a log_export_bucket the executor refuses to delete a log group: nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn no_export_bucket_means_no_log_group_deletion() {
    let rig = Rig::new(|t| {
        short_cooldown(t).replace("log_export_bucket = \"airlock-staging-log-exports\"\n", "")
    });
    let agent = rig.agent().await;
    let group = "/app/staging/worker";
    let a = agent
        .call(
            "request_delete_log_group",
            json!({"environment": "staging", "log_group": group, "reason": "r"}),
        )
        .await;
    assert_eq!(a.body["state"], "pending", "{}", a.text);
    let id = a.body["request_id"].as_str().unwrap().to_string();
    // The agent is told up front that, as the policy stands, nothing will be deleted.
    let next = a.body["what_happens_next"].to_string();
    assert!(
        next.contains("will refuse this request and delete nothing"),
        "{next}"
    );
    assert!(next.contains("names no log_export_bucket"), "{next}");
    assert_eq!(
        rig.show(&id)["backup_plan"]["refused"],
        json!(a.body["backup"]["refused"])
    );
    let (v, _) = approve_and_execute(&rig, &id, group);
    assert_eq!(v["state"], "failed", "{v}");
    crate::support::assert_failed_because(&v, "names no log_export_bucket");
    assert_eq!(rig.aws(&["log-group", group])["exists"], true);
}

/// The delete each tool queues runs under a policy naming only its resource and its action.
#[test]
fn delete_policies_name_only_their_resource() {
    let e = engine("us-east-1");
    for (tool, args, action, own, others) in [
        (
            "request_delete_snapshot",
            json!({"environment": "staging", "snapshot_id": "snap-0123456789abcdef0", "reason": "r"}),
            "ec2:DeleteSnapshot",
            vec!["arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0"],
            vec![
                "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef1",
                "arn:aws:ec2:us-west-2::snapshot/snap-0123456789abcdef0",
                "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0",
            ],
        ),
        (
            "request_delete_db_instance",
            json!({"environment": "staging", "db_instance_id": "reports", "reason": "r"}),
            "rds:DeleteDBInstance",
            vec!["arn:aws:rds:us-east-1:123456789012:db:reports"],
            vec![
                "arn:aws:rds:us-east-1:123456789012:db:reports2",
                "arn:aws:rds:us-east-1:123456789012:db:report",
                "arn:aws:rds:us-east-1:210987654321:db:reports",
                "arn:aws:rds:us-west-2:123456789012:db:reports",
            ],
        ),
        (
            "request_delete_log_group",
            json!({"environment": "staging", "log_group": "/app/staging/old", "reason": "r"}),
            "logs:DeleteLogGroup",
            vec![
                "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/old",
                "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/old:*",
            ],
            vec![
                "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/older",
                "arn:aws:logs:us-east-1:123456789012:log-group:/app/staging/api",
                "arn:aws:logs:us-east-1:210987654321:log-group:/app/staging/old",
            ],
        ),
    ] {
        let p = session_policy(&e, tool, args);
        let doc: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(doc["Statement"][0]["Action"], json!([action]), "{tool}");
        assert_eq!(doc["Statement"][0]["Resource"], json!(own), "{tool}");
        for r in &own {
            assert_eq!(
                eval(&p, action, r, "us-east-1"),
                Decision::Allow,
                "{tool} {r}"
            );
            for d in DESTRUCTIVE.iter().filter(|d| **d != action) {
                assert_eq!(
                    eval(&p, d, r, "us-east-1"),
                    Decision::NotApplicable,
                    "{tool} {d}"
                );
            }
        }
        for o in &others {
            let region = o
                .split(':')
                .nth(3)
                .filter(|r| !r.is_empty())
                .unwrap_or("us-east-1");
            assert_eq!(
                eval(&p, action, o, region),
                Decision::NotApplicable,
                "{tool} {o}"
            );
        }
    }
}

/// The executor killed right after each backup request AWS accepted (before it could record
/// it), again and again: every restart finds the backup it already started, by the name or
/// description that carries the request id, and none is taken twice.
#[tokio::test(flavor = "multi_thread")]
async fn crashes_between_a_backup_request_and_its_record_never_back_up_twice() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let vol = rig.moto.volume("staging_web");
    let snap = rig.moto.seed["snapshots"]["staging_api"]
        .as_str()
        .unwrap()
        .to_string();
    let db = "staging-api-db";
    let group = "/app/staging/worker";
    let calls = [
        (
            "request_delete_volume",
            json!({"environment": "staging", "volume_id": vol, "reason": "r"}),
            vol.clone(),
        ),
        (
            "request_delete_snapshot",
            json!({"environment": "staging", "snapshot_id": snap, "reason": "r"}),
            snap.clone(),
        ),
        (
            "request_delete_db_instance",
            json!({"environment": "staging", "db_instance_id": db, "reason": "r"}),
            db.to_string(),
        ),
        (
            "request_delete_log_group",
            json!({"environment": "staging", "log_group": group, "reason": "r"}),
            group.to_string(),
        ),
    ];
    let key = rig.approver("alice", true);
    let mut ids = Vec::new();
    for (tool, args, resource) in calls {
        let id = request(&agent, tool, args).await;
        let (code, screen) = rig.approve(&id, &key, &resource, PASS, None);
        assert_eq!(code, 0, "{screen}");
        ids.push(id);
    }
    for id in &ids {
        rig.wait_until_due(id);
    }
    let mut kills = 0;
    let mut log = String::new();
    for _ in 0..30 {
        let Run { code, out, err } =
            rig.executor_once(&[("AIRLOCK_FAULT", "kill-after-backup-request")]);
        log.push_str(&out);
        log.push_str(&err);
        if code == -1 {
            kills += 1;
            continue;
        }
        assert!(code == 0 || code == 4, "{out}{err}");
        if ids.iter().all(|id| rig.state(id) == "executed") {
            break;
        }
    }
    for id in &ids {
        assert_eq!(rig.state(id), "executed", "{}\n{log}", rig.show(id));
    }
    // volume: snapshot + copy; snapshot: copy; DB: snapshot + copy; logs: export.
    assert_eq!(kills, 6, "{log}");
    assert!(log.contains("found this request's"), "{log}");

    // One backup of each, no more.
    let (v_id, s_id, d_id, l_id) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    assert_eq!(
        rig.aws(&["snapshots-described", "us-east-1", v_id])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        rig.aws(&["snapshots-described", "us-west-2", v_id])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        rig.aws(&["snapshots-described", "us-west-2", s_id])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let name = format!("airlock-{d_id}");
    assert_eq!(
        rig.aws(&["db-snapshot", "us-east-1", &name])["status"],
        "available"
    );
    assert_eq!(
        rig.aws(&["db-snapshot", "us-west-2", &name])["status"],
        "available"
    );
    let bucket = rig.moto.seed["buckets"]["log_exports"]
        .as_str()
        .unwrap()
        .to_string();
    let objects = rig.aws(&["s3-objects", &bucket, &format!("airlock/{l_id}/")]);
    assert_eq!(
        objects.as_array().unwrap().len(),
        1,
        "one export of the group's one stream: {objects}"
    );
    assert!(!rig.volume_exists(&vol));
    assert_eq!(rig.aws(&["snapshot", "us-east-1", &snap])["exists"], false);
    assert_eq!(rig.aws(&["db", "us-east-1", db])["exists"], false);
    assert_eq!(rig.aws(&["log-group", group])["exists"], false);
}
