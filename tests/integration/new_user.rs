//! What a new user hits (issue 11): each test names the item it guards and fails on the code
//! before its fix. The real binary, a real moto with IAM enforcement on, a pty where a person
//! would type.

use serde_json::json;

use crate::support::*;

/// Item 16: a resource name with `..`, `.` or doubled separators is refused before any
/// decision, so `/app/staging/web/../../prod/db` cannot pass a rule for `/app/staging/*`, and
/// no credential is minted for it.
#[tokio::test(flavor = "multi_thread")]
async fn non_canonical_resource_names_are_refused_before_any_decision() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &demo_policy()).await;
    for name in [
        "/app/staging/web/../../prod/bookings",
        "/app/staging/./api",
        "/app/staging//api",
        "/app/staging/api/",
    ] {
        let a = s
            .call(
                "read_logs",
                json!({"environment": "staging", "log_group": name}),
            )
            .await;
        assert!(a.is_error, "{name}: {}", a.text);
        assert_eq!(a.body["error"], "invalid_argument", "{name}: {}", a.text);
        assert_eq!(a.body["field"], "log_group", "{name}");
        assert!(
            a.text.contains("not a canonical resource name"),
            "{}",
            a.text
        );
    }
    assert_eq!(s.assume_role_count(), 0, "{}", s.stderr());
    // The canonical name still works.
    let a = s
        .call(
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await;
    assert!(!a.is_error, "{}", a.text);
}

/// A request in a fresh queue file, made through the library (no AWS needed).
async fn queued(db: &std::path::Path) -> String {
    use airlock::queue::{Call, NewRequest, Queue};
    let q = Queue::open(db).await.unwrap();
    let r = q
        .create(
            &NewRequest {
                call: Call {
                    tool: "request_delete_volume".into(),
                    environment: "staging".into(),
                    account: "123456789012".into(),
                    region: "us-east-1".into(),
                    resource_arn: "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0"
                        .into(),
                    arguments: json!({"volume_id": "vol-0123456789abcdef0"}),
                },
                resource_id: "vol-0123456789abcdef0".into(),
                policy_hash: "p".into(),
                rule: "rule #1".into(),
                approvers_required: 1,
                cooldown_ms: 0,
                reason: "test".into(),
                client_name: "test".into(),
                client_version: "1".into(),
                session_id: "s".into(),
                resource_json: "{}".into(),
                ttl_ms: 3_600_000,
            },
            "agent",
            airlock::timefmt::now_ms(),
        )
        .await
        .unwrap();
    q.close().await;
    r.id
}

/// Item 13: a bad `--state` is a usage error (exit 2, it was 1), an unknown request id is
/// refused (exit 4, as docs/cli.md now says), and a person's actions are audited under their
/// OS user's name even when `$USER` is unset (it was `cli:unknown`).
#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_and_the_audit_actor_are_what_the_docs_say() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let id = queued(&db).await;
    let dbs = db.to_str().unwrap();
    let r = airlock(&["requests", "list", "--db", dbs, "--state", "nope"], &[]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.contains("unknown state `nope`") && r.err.contains("pending"),
        "{}",
        r.err
    );
    let r = airlock(&["requests", "show", "--db", dbs, "r-000000000000"], &[]);
    assert_eq!(r.code, 4, "{}", r.err);
    // No USER, no LOGNAME: only PATH and HOME.
    let env = vec![("HOME".to_string(), dir.path().display().to_string())];
    let r = airlock(
        &["deny", "--db", dbs, &id, "--reason", "not this one"],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let r = airlock(&["audit", "show", "--db", dbs, "--json"], &env);
    let events: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    let denied = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "denied")
        .unwrap();
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(denied["actor"], format!("cli:{}", me.trim()), "{denied}");
}

/// Item 9: run outside the policy's folder, a command says where it looked and how to name the
/// policy (it said only "cannot read the policy: No such file or directory").
#[test]
fn a_missing_policy_names_the_flag_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["check"][..],
        &["requests", "list"],
        &["serve"],
        &["executor", "--once"],
    ] {
        let r = airlock_in(Some(dir.path()), args, &[]);
        assert_eq!(r.code, 3, "{args:?}: {}", r.err);
        assert!(
            r.err.contains("--policy PATH") && r.err.contains("AIRLOCK_POLICY"),
            "{args:?}: {}",
            r.err
        );
        assert!(
            r.err.contains(&dir.path().display().to_string()),
            "{}",
            r.err
        );
    }
}

/// Item 5: a new MCP session cannot withdraw a request another session made (and a human
/// approved); the session that made it can, and a person can with `airlock cancel`.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_requesting_session_may_cancel() {
    let rig = Rig::new(|t| t);
    let vol = rig.moto.volume("staging_api");
    let a = rig.agent().await;
    let id = rig.request_delete(&a, &vol).await;
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &vol, PASS, None);
    assert_eq!(code, 0, "{screen}");
    let b = rig.agent().await;
    let r = b
        .call(
            "cancel_request",
            json!({"request_id": id, "reason": "not mine"}),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert_eq!(r.body["error"], "refused", "{}", r.text);
    assert!(
        r.text.contains("another session") && r.text.contains("airlock cancel"),
        "{}",
        r.text
    );
    assert_eq!(rig.state(&id), "approved");
    assert!(!rig.audit_events(&id).contains(&"cancelled".to_string()));
    let r = a.call("cancel_request", json!({"request_id": id})).await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(rig.state(&id), "cancelled");
}

/// Item 12: policy errors a person can act on: a duplicate key names the key and where it was
/// first set; a wrong type says what belongs there in words; a misspelt region gets the nearest
/// real one; one bad account is one error (not three); errors come in line order.
#[test]
fn policy_errors_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let check = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let r = airlock(&["check", "--policy", p.to_str().unwrap()], &[]);
        assert_eq!(r.code, 3, "{name}: {}", r.err);
        r.err
    };
    let dup = check(
        "dup.toml",
        base.replacen(
            "cooldown = \"10m\"\n",
            "cooldown = \"10m\"\ncooldown = \"5m\"\n",
            1,
        ),
    );
    assert!(
        dup.contains("duplicate key `cooldown`: it is already set at line"),
        "{dup}"
    );
    let ty = check(
        "type.toml",
        base.replacen("approvers = 1\n", "approvers = \"two\"\n", 1),
    );
    assert!(
        ty.contains("expected a whole number such as 2 here, found the string \"two\""),
        "{ty}"
    );
    assert!(!ty.contains("u32"), "{ty}");
    let region = check(
        "region.toml",
        base.replacen("region = \"us-east-1\"", "region = \"us-wst-2\"", 1),
    );
    assert!(region.contains("did you mean \"us-west-2\""), "{region}");
    let account = check(
        "account.toml",
        base.replacen("account = \"123456789012\"", "account = \"12345\"", 1),
    );
    assert_eq!(account.matches("account.toml:").count(), 1, "{account}");
    assert!(
        !account.contains("agent_role must be"),
        "one root mistake: {account}"
    );
    // [protected] before [environments]: its error comes first, as in the file.
    let moved = base.replace("[protected]\n", "[protected_moved]\n");
    let moved = moved.replacen(
        "[environments.staging]",
        "[protected]\nids = []\ntags = [\"nokeyvalue\"]\n\n[environments.staging]",
        1,
    );
    let moved = moved.replace("[protected_moved]\n# airlock refuses any call naming these, and marks them in listings.\nids = []\ntags = [\"env=prod\"]\n", "");
    let moved = moved.replacen("account = \"123456789012\"", "account = \"12345\"", 1);
    let order = check("order.toml", moved);
    let lines: Vec<usize> = order
        .lines()
        .filter_map(|l| l.split(':').nth(1).and_then(|n| n.parse().ok()))
        .collect();
    assert!(lines.len() >= 2, "{order}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{order}");
}
