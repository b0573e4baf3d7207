//! An independent MCP client: the official Python SDK (scripts/demo_client.py, the same client
//! the demo uses) drives the real binary against moto.

use crate::support::*;
use serde_json::Value;

#[test]
fn the_python_sdk_sees_the_same_server() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let mut env = moto.airlock_env(home.path());
    env.push((
        "AIRLOCK_DB".into(),
        home.path().join("queue.db").display().to_string(),
    ));
    // The repository's policy, signed by a trusted approver at a terminal (as `airlock policy
    // sign` is meant to be used) so the destructive request can be queued.
    let policy = policy_with(home.path(), |t| t);
    let trust = home.path().join("approvers.toml");
    std::fs::write(&trust, "").unwrap();
    sign_policy_as_owner(home.path(), &policy, &trust);
    env.push(("AIRLOCK_TRUST".into(), trust.display().to_string()));
    let (stdout, stderr) = run_demo_client(&policy, &env);
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["server"]["name"], "airlock");
    assert_eq!(r["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["tools"], serde_json::json!(builtin_tools()));
    let calls = r["calls"].as_array().unwrap();
    let outcome = call_outcomes(&r);
    assert_eq!(
        outcome,
        [
            ("describe_access", false),
            ("list_volumes", false),
            ("list_volumes", false),
            ("read_logs", false),
            ("read_logs", true),
            ("list_volumes", true),
            ("read_logs", true),
            ("list_volumes", false),
            ("request_delete_volume", false),
            ("request_delete_volume", true),
            ("get_request", false),
        ]
    );
    let request = &calls[8]["body"];
    assert_eq!(request["state"], "pending");
    assert!(
        calls[9]["body"]["message"]
            .as_str()
            .unwrap()
            .contains("protected")
    );
    assert_eq!(calls[10]["body"]["request_id"], request["request_id"]);
    assert_eq!(calls[10]["body"]["state"], "pending");
    assert_eq!(
        calls[1]["body"]["count"], 3,
        "the three staging-tagged volumes"
    );
    assert_eq!(calls[5]["body"]["field"], "volume_ids[0]");
    let texts: Vec<&str> = calls.iter().map(|c| c["text"].as_str().unwrap()).collect();
    for secret in moto.secret_values() {
        assert!(
            !stdout.contains(&secret),
            "secret leaked to the client: {secret}"
        );
    }
    assert_no_credentials(&moto, &texts, &stderr);
}
