//! Protocol abuse against the real binary over stdio: malformed JSON, wrong types, unknown
//! methods, a 64 MB line, thousands of concurrent calls, calls before `initialize`, the client
//! vanishing mid-call, stdin closed. Each ends in a protocol error or a clean exit: never a
//! panic, a hang (every wait below has a deadline that fails the test) or a partial queue write.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(60);

struct Raw {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
    _home: tempfile::TempDir,
}

impl Raw {
    fn start(env: Vec<(String, String)>, db: Option<&Path>) -> Raw {
        Self::start_with_policy(env, db, &repo().join("policy.toml"))
    }

    fn start_with_policy(env: Vec<(String, String)>, db: Option<&Path>, policy: &Path) -> Raw {
        let home = tempfile::tempdir().unwrap();
        let stderr = home.path().join("stderr.log");
        let mut cmd = Command::new(airlock_bin());
        cmd.arg("serve")
            .arg("--policy")
            .arg(policy)
            .env_clear()
            .envs(env)
            .env("HOME", home.path())
            .env(
                "AIRLOCK_DB",
                db.map(Path::to_path_buf)
                    .unwrap_or_else(|| home.path().join("q.db")),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Raw {
            child,
            stdin,
            stdout,
            stderr,
            _home: home,
        }
    }

    async fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(line.as_bytes()).await.unwrap();
        w.write_all(b"\n").await.unwrap();
        w.flush().await.unwrap();
    }

    async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(DEADLINE, self.stdout.next_line())
            .await
            .expect("the server hung")
            .unwrap()?;
        Some(
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}")),
        )
    }

    async fn init(&mut self) {
        self.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "abuse", "version": "1"}}}).to_string()).await;
        let r = self.recv().await.unwrap();
        assert_eq!(r["id"], 0);
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
    }

    /// The client disappears: both pipes close at once. Returns the exit code.
    async fn vanish(self) -> Option<i32> {
        let Raw {
            mut child,
            stdin,
            stdout,
            stderr,
            _home,
        } = self;
        drop(stdin);
        drop(stdout);
        let status = tokio::time::timeout(DEADLINE, child.wait())
            .await
            .expect("the server did not exit")
            .unwrap();
        let err = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(!err.contains("panicked"), "{err}");
        status.code()
    }

    /// Close stdin and wait for the exit; returns (exit code, stderr).
    async fn finish(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("the server did not exit after stdin closed")
            .unwrap();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(!err.contains("panicked"), "{err}");
        (status.code(), err)
    }
}

fn call(id: i64, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}).to_string()
}

#[tokio::test]
async fn malformed_messages_get_errors_and_the_session_goes_on() {
    let mut s = Raw::start(vec![], None);
    s.init().await;
    let cases: Vec<(String, Value, i64)> = vec![
        ("{not json".into(), Value::Null, -32700),
        (r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"x"}"#.into(), json!(3), -32602),
        (r#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}"#.into(), Value::Null, -32600),
        (r#"[{"jsonrpc":"2.0","id":4,"method":"tools/list"}]"#.into(), Value::Null, -32600),
        (r#"{"jsonrpc":"2.0","id":5,"method":"no/such/method"}"#.into(), json!(5), -32601),
        (r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"list_volumes","arguments":[1,2]}}"#.into(), json!(6), -32602),
        (call(7, "no_such_tool", json!({})), json!(7), -32602),
    ];
    for (line, id, code) in &cases {
        s.send(line).await;
        let r = s.recv().await.expect("an answer");
        assert_eq!(r["id"], *id, "{line} -> {r}");
        let got = r["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{line} -> no error: {r}"));
        // Where the guard answers, the code is exact; where rmcp decodes the message and then
        // rejects it (bad `arguments`), it picks among the request errors.
        assert!(
            got == *code || (*code == -32602 && (-32602..=-32600).contains(&got)),
            "{line} -> {r}"
        );
    }
    // Wrong argument types inside a valid call: a tool error naming the field.
    s.send(&call(8, "list_volumes", json!({"environment": 5})))
        .await;
    let r = s.recv().await.unwrap();
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["field"], "environment");
    // And the session still works.
    s.send(&call(9, "describe_access", json!({}))).await;
    assert_eq!(s.recv().await.unwrap()["id"], 9);
    let (code, _) = s.finish().await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_64_mb_line_is_refused_without_growing_memory() {
    let mut s = Raw::start(vec![], None);
    s.init().await;
    let pid = s.child.id().unwrap();
    let mut huge = String::with_capacity(64 * 1024 * 1024 + 64);
    huge.push_str(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"describe_access","arguments":{"environment":""#);
    huge.extend(std::iter::repeat_n('a', 64 * 1024 * 1024));
    huge.push_str(r#""}}}"#);
    s.send(&huge).await;
    let r = s.recv().await.unwrap();
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    s.send(&call(2, "describe_access", json!({}))).await;
    assert_eq!(s.recv().await.unwrap()["id"], 2);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        hwm_kb < 48 * 1024,
        "peak RSS {hwm_kb} kB: the line was buffered"
    );
    let (code, _) = s.finish().await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn thousands_of_concurrent_calls_are_all_answered_once() {
    let mut s = Raw::start(vec![], None);
    s.init().await;
    let n = 3000;
    let mut batch = String::new();
    for i in 1..=n {
        let tool = if i % 3 == 0 {
            "list_volumes"
        } else {
            "describe_access"
        };
        // list_volumes with a bad environment: refused before any AWS call.
        let args = if i % 3 == 0 {
            json!({"environment": "nowhere"})
        } else {
            json!({})
        };
        batch.push_str(&call(i, tool, args));
        batch.push('\n');
    }
    let mut w = s.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        w.write_all(batch.as_bytes()).await.unwrap();
        w.flush().await.unwrap();
        w
    });
    let mut seen = HashSet::new();
    for _ in 0..n {
        let r = s.recv().await.expect("an answer for every call");
        let id = r["id"].as_i64().unwrap();
        assert!(seen.insert(id), "answered twice: {id}");
        assert_eq!(r["result"]["isError"], json!(id % 3 == 0), "{r}");
    }
    assert_eq!(seen.len() as i64, n);
    s.stdin = Some(writer.await.unwrap());
    let (code, _) = s.finish().await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn calls_before_initialize_and_closed_stdin_end_cleanly() {
    // A call before initialize: a protocol error for that call; the handshake still works.
    let mut s = Raw::start(vec![], None);
    s.send(&call(1, "describe_access", json!({}))).await;
    let r = s.recv().await.unwrap();
    assert_eq!(r["id"], 1);
    assert!(r["error"]["code"].as_i64().is_some(), "{r}");
    s.init().await;
    s.send(&call(2, "describe_access", json!({}))).await;
    assert_eq!(s.recv().await.unwrap()["result"]["isError"], false);
    let (code, err) = s.finish().await;
    assert_eq!(code, Some(0), "{err}");
    // stdin closed at once: a clean exit with nothing on stdout.
    let mut s = Raw::start(vec![], None);
    drop(s.stdin.take());
    assert!(s.stdout.next_line().await.unwrap().is_none());
    let (code, err) = s.finish().await;
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_vanishing_mid_call_leaves_no_partial_queue_write() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    // A signed copy of the policy, so the requests really reach the queue.
    let policy = crate::support::policy_with(dir.path(), |t| t);
    let trust = dir.path().join("approvers.toml");
    std::fs::write(&trust, "").unwrap();
    crate::support::sign_policy_as_owner(dir.path(), &policy, &trust);
    for (i, vol) in ["staging_api", "staging_web", "staging_db"]
        .iter()
        .enumerate()
    {
        let mut env = moto.airlock_env(dir.path());
        env.push(("AIRLOCK_TRUST".into(), trust.display().to_string()));
        let mut s = Raw::start_with_policy(env, Some(&db), &policy);
        s.init().await;
        s.send(&call(
            1,
            "request_delete_volume",
            json!({"environment": "staging", "volume_id": moto.volume(vol), "reason": "r"}),
        ))
        .await;
        // Vanish at a different moment each time: at once, after the call is read, after a
        // round trip on another call.
        match i {
            0 => {}
            1 => tokio::task::yield_now().await,
            _ => {
                s.send(&call(2, "describe_access", json!({}))).await;
            }
        }
        let code = s.vanish().await;
        assert!(matches!(code, Some(0) | Some(1)), "exit {code:?}");
    }
    let env = vec![
        ("HOME".into(), dir.path().display().to_string()),
        ("AIRLOCK_DB".into(), db.display().to_string()),
    ];
    let Run { code, out, err } = airlock(
        &[
            "audit",
            "verify",
            "--policy",
            repo().join("policy.toml").to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let Run {
        code: _,
        out,
        err: _,
    } = airlock(&["requests", "list", "--json"], &env);
    for r in serde_json::from_str::<Vec<Value>>(&out).unwrap() {
        assert_eq!(r["state"], "pending", "{r}");
    }
}
