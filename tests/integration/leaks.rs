//! Leak check: the whole flow (the demo's calls, a destructive request, its approval and its
//! execution) with every log at trace level, the moto credentials, the session tokens and
//! planted secrets in the logs. Afterwards none of them appears in any tool result, stdout,
//! stderr, the audit log, or the SQLite file.

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn nothing_secret_leaves_the_process_even_at_trace_level() {
    let rig = Rig::new(|t| t.replace("cooldown = \"10m\"", "cooldown = \"1s\""));
    let trace = ("AIRLOCK_LOG".to_string(), "trace".to_string());
    let mut seen: Vec<(String, String)> = Vec::new();

    // The demo's agent session, through the Python SDK, logging at trace.
    let mut env = rig.moto.airlock_env(rig.dir.path());
    env.push(("AIRLOCK_DB".into(), rig.db.display().to_string()));
    env.push(("AIRLOCK_TRUST".into(), rig.trust.display().to_string()));
    env.push(trace.clone());
    let (stdout, stderr) = run_demo_client(&rig.policy, &env);
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "the server did not log at trace level"
    );
    seen.push(("demo stdout (every tool result)".into(), stdout.clone()));
    seen.push(("serve stderr at trace".into(), stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let id = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tool"] == "request_delete_volume" && c["is_error"] == false)
        .unwrap()["body"]["request_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A person approves; the executor runs it, at trace level.
    let key = rig.approver("alice", true);
    let vol = rig.show(&id)["resource_id"].as_str().unwrap().to_string();
    let (code, screen) = rig.approve(&id, &key, &vol, PASS, None);
    assert_eq!(code, 0, "{screen}");
    seen.push(("approve terminal".into(), screen));
    rig.wait_until_due(&id);
    let mut env = rig.executor_env();
    env.push(trace.clone());
    let Run { code, out, err } = airlock(&["executor", "--once"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(rig.state(&id), "executed");
    seen.push(("executor stdout".into(), out));
    seen.push(("executor stderr at trace".into(), err));

    // Everything at rest.
    let Run {
        code: _,
        out: audit,
        err: _,
    } = airlock(&["audit", "show", "--json"], &rig.cli_env());
    seen.push(("audit log".into(), audit));
    for f in ["queue.db", "queue.db-wal", "queue.db-shm"] {
        if let Ok(bytes) = std::fs::read(rig.dir.path().join(f)) {
            seen.push((f.into(), String::from_utf8_lossy(&bytes).into()));
        }
    }

    let s = &rig.moto.seed;
    let mut secrets: Vec<String> = [
        "access_key_id",
        "secret_access_key",
        "operator_access_key_id",
        "operator_secret_access_key",
    ]
    .iter()
    .map(|k| s[*k].as_str().unwrap().to_string())
    .collect();
    secrets.extend(rig.moto.secret_values());
    let temp_key = regex::Regex::new(r"ASIA[A-Z0-9]{16}").unwrap();
    for (what, text) in &seen {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} contains a secret ({}...)",
                &secret[..6]
            );
        }
        assert!(
            !temp_key.is_match(text),
            "{what} contains a temporary access key id"
        );
        assert!(
            !text.contains("FQoGZXIvYXdzE"),
            "{what} contains a session token"
        );
        assert!(
            !text.to_ascii_lowercase().contains("x-amz-security-token:"),
            "{what} contains a security token header"
        );
    }
    let _ = json!({});
}
