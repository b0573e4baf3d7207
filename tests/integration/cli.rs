//! The CLI's contract: `check` and `serve` refuse malformed configuration with file:line:col and
//! exit 3; `explain` shows the decision and exits 0 / 4 / 5; nothing needs AWS.

use std::path::Path;

use crate::support::*;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_accepts_the_repository_policy() {
    let Run { code, out, err } =
        airlock(&["check", "--policy", s(&repo().join("policy.toml"))], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
    let Run { code, out, err: _ } = airlock(
        &[
            "check",
            "--policy",
            s(&repo().join("policy.toml")),
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["tools"].as_array().unwrap().len(),
        airlock::catalogue::BUILTIN.len()
    );
}

#[test]
fn malformed_policy_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy_with(dir.path(), |t| {
        t.replace("decision = \"deny\"", "decision = \"nope\"")
            .replace("\nregion = \"us-west-2\"", "\nregion = \"west\"")
    });
    let text = std::fs::read_to_string(&p).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for cmd in ["check", "serve"] {
        let Run { code, out, err } = airlock(&[cmd, "--policy", s(&p)], &[]);
        assert_eq!(code, 3, "{cmd}: {out}{err}");
        assert!(out.is_empty(), "{cmd} wrote to stdout: {out}");
        let want = format!(
            "{}:{}:12: decision `nope` must be",
            p.display(),
            line_of("\"nope\"")
        );
        assert!(err.contains(&want), "{cmd}: {err}\nwanted {want}");
        let want = format!("{}:{}:10: region `west`", p.display(), line_of("\"west\""));
        assert!(err.contains(&want), "{cmd}: {err}\nwanted {want}");
    }
    let Run { code, out, err: _ } = airlock(&["check", "--policy", s(&p), "--json"], &[]);
    assert_eq!(code, 3);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["errors"].as_array().unwrap().len(),
        4,
        "three rules with `nope`, one bad region"
    );
}

#[test]
fn missing_policy_is_a_configuration_error() {
    let Run { code, out: _, err } =
        airlock(&["check", "--policy", "/nonexistent/policy.toml"], &[]);
    assert_eq!(code, 3);
    assert!(
        err.contains("/nonexistent/policy.toml:1:1: cannot read the policy"),
        "{err}"
    );
}

#[test]
fn malformed_tool_file_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    for f in [
        "describe_access.toml",
        "list_volumes.toml",
        "read_logs.toml",
    ] {
        std::fs::copy(repo().join("tools").join(f), tools.join(f)).unwrap();
    }
    let bad = std::fs::read_to_string(repo().join("tools/list_volumes.toml"))
        .unwrap()
        .replace("name = \"list_volumes\"", "name = \"list_volumes_wide\"")
        .replace(
            "iam_actions = [\"ec2:DescribeVolumes\"]",
            "iam_actions = [\"ec2:*\"]",
        );
    std::fs::write(tools.join("wide.toml"), &bad).unwrap();
    let line = bad.lines().position(|l| l.contains("ec2:*")).unwrap() + 1;
    let Run { code, out: _, err } = airlock(
        &[
            "check",
            "--policy",
            s(&repo().join("policy.toml")),
            "--tools",
            s(&tools),
        ],
        &[],
    );
    assert_eq!(code, 3, "{err}");
    let want = format!(
        "{}:{line}:16: `ec2:*` is a wildcard action",
        tools.join("wide.toml").display()
    );
    assert!(err.contains(&want), "{err}\nwanted {want}");
}

#[test]
fn explain_exit_codes_and_policy() {
    let policy = repo().join("policy.toml");
    let run = |tool: &str, args: &str| {
        airlock(
            &["explain", "--policy", s(&policy), tool, args, "--json"],
            &[],
        )
    };
    let Run { code, out, err } = run("list_volumes", r#"{"environment":"staging"}"#);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"]["decision"], "allow");
    assert_eq!(
        v["session_policy"]["document"]["Statement"][0]["Action"][0],
        "ec2:DescribeVolumes"
    );
    let Run { code, out, err: _ } = run(
        "read_logs",
        r#"{"environment":"prod","log_group":"/app/prod/api"}"#,
    );
    assert_eq!(code, 4);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"]["decision"], "deny");
    assert!(
        v["session_policy"].is_null(),
        "no session policy for a denied call"
    );
    let Run { code, out, err: _ } = run(
        "read_logs",
        r#"{"environment":"staging","log_group":"vol-*"}"#,
    );
    assert_eq!(code, 4);
    assert!(out.contains("argument `log_group`"), "{out}");
    let Run { code, out: _, err } = airlock(
        &[
            "explain",
            "--policy",
            s(&policy),
            "list_volumes",
            "not json",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not valid JSON"), "{err}");
    // Human output shows the document.
    let Run { code, out, err: _ } = airlock(
        &[
            "explain",
            "--policy",
            s(&policy),
            "list_volumes",
            r#"{"environment":"staging"}"#,
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("decision:    allow (rule #1"), "{out}");
    assert!(
        out.contains("\"aws:RequestedRegion\": \"us-east-1\""),
        "{out}"
    );
}

/// Run `airlock ARGS` with stdout a pipe whose reading end is already closed (as in
/// `airlock requests list --json | head -c 0`), `stdin` written to its stdin. Returns the exit
/// status and stderr.
fn with_closed_stdout(
    args: &[&str],
    env: &[(String, String)],
    stdin: &str,
) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(crate::support::airlock_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

/// A closed stdout ends a CLI command quietly (the default SIGPIPE action, like any Unix
/// tool), never with a panic and exit 101; `serve`, whose stdout is the MCP stream, ends its
/// session without a panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with(dir.path(), |t| t);
    let env = vec![
        ("HOME".to_string(), s(dir.path()).to_string()),
        ("AIRLOCK_POLICY".into(), s(&policy).to_string()),
        (
            "AIRLOCK_DB".into(),
            s(&dir.path().join("queue.db")).to_string(),
        ),
        (
            "AIRLOCK_TRUST".into(),
            s(&dir.path().join("approvers.toml")).to_string(),
        ),
    ];
    for args in [
        &["requests", "list", "--json"][..],
        &["tools", "list", "--json"],
        &["check", "--json"],
        &["explain", "list_volumes", "{\"environment\":\"staging\"}"],
    ] {
        let (status, err) = with_closed_stdout(args, &env, "");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert_ne!(status.code(), Some(101), "{args:?}: {err}");
        assert!(
            status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {status:?} {err}"
        );
    }
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let (status, err) = with_closed_stdout(&["serve"], &env, &format!("{init}\n"));
    assert!(!err.contains("panicked"), "serve: {err}");
    assert_ne!(status.code(), Some(101), "serve: {err}");
    assert_eq!(
        status.signal(),
        None,
        "serve is not killed by SIGPIPE: {err}"
    );
}

/// `explain` of a tool the catalogue does not have is a refusal: exit 4, as the exit-code
/// table says, in text and JSON, naming the tool.
#[test]
fn explain_of_an_unknown_tool_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with(dir.path(), |t| t);
    for json in [false, true] {
        let mut args = vec!["explain", "--policy", s(&policy), "nosuch", "{}"];
        if json {
            args.push("--json");
        }
        let Run { code, out, err } = airlock(&args, &[]);
        assert_eq!(code, 4, "{out}{err}");
        assert!(out.contains("refused") && out.contains("nosuch"), "{out}");
    }
}
