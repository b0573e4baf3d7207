//! A team's own tools folder through the real binary: `airlock tools list` / `check` /
//! `schema`, each unsafe-tool rule refused with FILE:LINE:COL, and tools that exist only as
//! files of the folder hitting their pagination and size caps against moto.

use std::path::Path;

use crate::support::*;
use serde_json::{Value, json};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A valid read tool for a team's folder, to break in the tests below.
const TEAM_READ: &str = r#"name = "describe_things"
description = "Describe things."
risk = "read"

[[arguments]]
name = "environment"
type = "environment"
required = true
description = "The environment."

[[arguments]]
name = "thing_id"
type = "string"
required = true
description = "One thing's id."
pattern = "^t-[0-9a-f]{8}$"
resource = true

[aws]
service = "ec2"
protocol = "ec2"
action = "DescribeThings"
version = "2016-11-15"
iam_actions = ["ec2:DescribeThings"]
resources = ["arn:${partition}:ec2:${region}:${account}:thing/${thing_id}"]
"#;

/// 1-based (line, column) of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

#[test]
fn tools_list_shows_each_tool_and_where_it_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("describe_things.toml"), TEAM_READ).unwrap();
    let Run { code, out, err } =
        airlock(&["tools", "list", "--tools", s(dir.path()), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 1, "the folder is the whole catalogue: {out}");
    assert_eq!(v[0]["name"], "describe_things");
    assert_eq!(v[0]["risk"], "read");
    assert_eq!(v[0]["actions"], json!(["ec2:DescribeThings"]));
    assert_eq!(
        v[0]["resources"],
        json!(["arn:${partition}:ec2:${region}:${account}:thing/${thing_id}"])
    );
    assert_eq!(v[0]["source"], s(&dir.path().join("describe_things.toml")));

    let Run { code, out, err } = airlock(&["tools", "list", "--builtin"], &[]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("request_delete_volume "))
        .unwrap_or_else(|| panic!("{out}"));
    for want in [
        "destructive",
        "ec2:DeleteVolume",
        "volume/${volume_id}",
        "built-in",
    ] {
        assert!(row.contains(want), "{row}");
    }
    // The policy's settings.tools_dir is followed when no --tools is given.
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(repo().join("policy.toml"))
        .unwrap()
        .replace("[settings]\n", "[settings]\ntools_dir = \"team-tools\"\n");
    std::fs::write(&policy, text).unwrap();
    std::fs::create_dir(dir.path().join("team-tools")).unwrap();
    std::fs::write(dir.path().join("team-tools/t.toml"), TEAM_READ).unwrap();
    let Run { code, out, err } = airlock(&["tools", "list", "--policy", s(&policy)], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("team-tools/t.toml"), "{out}");
}

#[test]
fn each_unsafe_rule_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "wildcard_action.toml",
            TEAM_READ.replace("[\"ec2:DescribeThings\"]", "[\"ec2:Describe*\"]"),
            "\"ec2:Describe*\"",
            "is a wildcard action",
        ),
        (
            "destructive_in_read.toml",
            TEAM_READ.replace(
                "[\"ec2:DescribeThings\"]",
                "[\"ec2:DescribeThings\", \"ec2:TerminateInstances\"]",
            ),
            "\"ec2:TerminateInstances\"",
            "is not a read action, but this tool's risk is \"read\"",
        ),
        (
            "destructive_wire_action.toml",
            TEAM_READ.replace("action = \"DescribeThings\"", "action = \"DeleteThings\""),
            "\"DeleteThings\"",
            "action `DeleteThings` is not a read action",
        ),
        (
            "template_without_argument.toml",
            TEAM_READ.replace("thing/${thing_id}", "thing/t-00000000"),
            "\"arn:${partition}",
            "does not use any validated argument",
        ),
        (
            "argument_without_pattern.toml",
            TEAM_READ.replace("pattern = \"^t-[0-9a-f]{8}$\"\n", ""),
            "\"arn:${partition}",
            "must be a required string with a `pattern` to reach an ARN",
        ),
        (
            "argument_without_bound.toml",
            TEAM_READ.replace("{8}$", "+$"),
            "\"arn:${partition}",
            "accepts values of any length",
        ),
        (
            "argument_admits_wildcard.toml",
            TEAM_READ.replace("^t-[0-9a-f]{8}$", "^t-.{8}$"),
            "\"arn:${partition}",
            "accepts `*` or `?`",
        ),
    ];
    let mut args = vec!["tools".to_string(), "check".to_string()];
    for (name, text, _, _) in &cases {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        args.push(s(&p).to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let Run { code, out, err } = airlock(&argv, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    for (name, text, needle, message) in &cases {
        let (line, col) = position(text, needle);
        let want = format!("{}:{line}:{col}: ", s(&dir.path().join(name)));
        let found = err
            .lines()
            .any(|l| l.starts_with(&want) && l.contains(message));
        assert!(found, "wanted `{want}...{message}` in:\n{err}");
    }
    // The same as JSON, one error object per problem.
    let mut argv = argv.clone();
    argv.push("--json");
    let Run { code, out, err: _ } = airlock(&argv, &[]);
    assert_eq!(code, 3);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let errors = v["errors"].as_array().unwrap();
    for (name, text, needle, message) in &cases {
        let (line, col) = position(text, needle);
        assert!(
            errors.iter().any(|e| e["file"] == s(&dir.path().join(name))
                && e["line"] == line
                && e["col"] == col
                && e["message"].as_str().unwrap().contains(message)),
            "{name}: {out}"
        );
    }
    // The untouched file passes.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, TEAM_READ).unwrap();
    let Run { code, out, err } = airlock(&["tools", "check", s(&good)], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 1 tool(s)"), "{out}");
}

#[test]
fn tools_check_without_files_checks_the_configured_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), TEAM_READ).unwrap();
    let Run { code, out, err } = airlock(&["tools", "check", "--tools", s(dir.path())], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("describe_things"), "{out}");
    // A second file with the same tool name: the folder is refused, naming both files.
    std::fs::write(dir.path().join("b.toml"), TEAM_READ).unwrap();
    let Run { code, out: _, err } = airlock(&["tools", "check", "--tools", s(dir.path())], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!(
            "{}:1:1: a tool named `describe_things` is already defined in {}",
            s(&dir.path().join("b.toml")),
            s(&dir.path().join("a.toml"))
        )),
        "{err}"
    );
}

#[test]
fn tools_schema_prints_the_committed_schema() {
    let Run { code, out, err } = airlock(&["tools", "schema"], &[]);
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(repo().join("schemas/tool.schema.json")).unwrap();
    assert!(
        out == committed,
        "schemas/tool.schema.json is stale: cargo run -q -- tools schema > schemas/tool.schema.json"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["additionalProperties"], false);
    assert!(v["properties"]["aws"].is_object());
}

/// A policy for a team folder `team-tools` next to it, allowing `tools` in staging.
fn team_policy(dir: &Path, tools: &[&str]) -> std::path::PathBuf {
    let list: Vec<String> = tools.iter().map(|t| format!("\"{t}\"")).collect();
    let text = format!(
        r#"version = 1

[settings]
tools_dir = "team-tools"

[environments.staging]
description = "Staging."
account = "123456789012"
region = "us-east-1"
agent_role = "arn:aws:iam::123456789012:role/airlock-agent-staging"

[[rules]]
tools = [{}]
environments = ["staging"]
decision = "allow"
"#,
        list.join(", ")
    );
    let p = dir.join("policy.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::create_dir_all(dir.join("team-tools")).unwrap();
    p
}

/// The built-in read_logs, renamed, with `edit` applied: a team's variant of it.
fn logs_variant(dir: &Path, name: &str, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(repo().join("tools/read_logs.toml"))
        .unwrap()
        .replace("name = \"read_logs\"", &format!("name = \"{name}\""));
    let text = edit(text);
    std::fs::write(dir.join("team-tools").join(format!("{name}.toml")), text).unwrap();
}

fn messages(a: &crate::support::Answer) -> Vec<String> {
    a.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", a.text))
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// Pagination stops at the tool's `max_pages` and the answer says so; the same call with a
/// cap it does not reach returns everything and says nothing. Two events per page (the
/// request's `limit`), ten events in the log group: five pages.
#[tokio::test(flavor = "multi_thread")]
async fn pagination_stops_at_the_cap_and_says_so() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = team_policy(dir.path(), &["logs_two_pages", "logs_ten_pages"]);
    let paged = |pages: u32| {
        move |t: String| {
            let t = t
                .replace("\nlimit = 1000\n", "\nlimit = 2\n")
                .replace("max_pages = 5", &format!("max_pages = {pages}"));
            assert!(t.contains("\nlimit = 2\n") && t.contains(&format!("max_pages = {pages}")));
            t
        }
    };
    logs_variant(dir.path(), "logs_two_pages", paged(2));
    logs_variant(dir.path(), "logs_ten_pages", paged(10));
    let s = Server::start(Some(&moto), &policy).await;
    let args = json!({"environment": "staging", "log_group": "/app/staging/api"});

    let a = s.call("logs_two_pages", args.clone()).await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(a.body["count"], 4, "two pages of two events: {}", a.text);
    let note = a.body["truncated"].as_str().unwrap_or_default();
    assert!(
        note.contains(
            "stopped after 2 pages (the tool's cap); more results exist: narrow the call"
        ),
        "{}",
        a.text
    );

    let a = s.call("logs_ten_pages", args).await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(a.body["count"], 10, "{}", a.text);
    assert!(a.body.get("truncated").is_none(), "{}", a.text);
    let all = messages(&a);
    assert_eq!(all.first().unwrap(), "GET /health 200 3ms");
    assert_eq!(all.last().unwrap(), "GET /api/v1/users 200 12ms");
}

/// A huge answer is cut to the tool's `max_bytes`, keeping the end the tool keeps (the newest
/// log events), and the answer says how many items were left out and why.
#[tokio::test(flavor = "multi_thread")]
async fn huge_answers_are_truncated_to_max_bytes_with_a_note() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = team_policy(dir.path(), &["logs_small"]);
    logs_variant(dir.path(), "logs_small", |t| {
        let t = t.replace("max_bytes = 65536", "max_bytes = 1024");
        assert!(t.contains("max_bytes = 1024"));
        t
    });
    let s = Server::start(Some(&moto), &policy).await;
    let a = s
        .call(
            "logs_small",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await;
    assert!(!a.is_error, "{}", a.text);
    let items = a.body["items"].as_array().unwrap();
    let kept = items.len();
    assert!(kept > 0 && kept < 10, "{}", a.text);
    let bytes: usize = items.iter().map(|i| i.to_string().len() + 1).sum();
    assert!(bytes <= 1024, "{bytes} bytes of items: {}", a.text);
    assert_eq!(a.body["count"], kept);
    let note = a.body["truncated"].as_str().unwrap_or_default();
    assert!(
        note.contains(&format!(
            "{} more items left out to stay under 1024 bytes; narrow the call",
            10 - kept
        )),
        "{}",
        a.text
    );
    assert_eq!(
        messages(&a).last().unwrap(),
        "GET /api/v1/users 200 12ms",
        "the newest events are kept"
    );
}

/// An independent JSON Schema validator (Python's jsonschema, Draft 7) agrees with airlock's
/// parser: every built-in tool file is valid against the committed schema, and files the
/// parser refuses for their shape (unknown key, misspelt enum, out-of-range cap, missing key)
/// are invalid against it too. Prints one line per file: `ok` or the first schema error.
#[test]
fn the_committed_schema_agrees_with_the_parser() {
    const VALIDATE: &str = r#"
import json, sys, tomllib
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
v = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    doc = tomllib.load(open(path, "rb"))
    errs = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    print(path, "ok" if not errs else "invalid: " + errs[0].message)
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(repo().join("tools"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let bad = [
        (
            "unknown_key.toml",
            TEAM_READ.replace("risk = \"read\"", "risk = \"read\"\nrisky = true"),
        ),
        (
            "bad_enum.toml",
            TEAM_READ.replace("protocol = \"ec2\"", "protocol = \"soap\""),
        ),
        (
            "missing_key.toml",
            TEAM_READ.replace("description = \"Describe things.\"\n", ""),
        ),
        (
            "zero_pages.toml",
            format!(
                "{TEAM_READ}\n[aws.pagination]\nrequest_token = \"NextToken\"\nresponse_token = \"nextToken\"\nmax_pages = 0\n"
            ),
        ),
    ];
    for (name, text) in &bad {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        // The parser refuses each of them too.
        let Run { code, out: _, err } = airlock(&["tools", "check", s(&p)], &[]);
        assert_eq!(code, 3, "{name}: {err}");
        files.push(p.display().to_string());
    }
    let out = std::process::Command::new(crate::support::venv_bin("python"))
        .arg("-c")
        .arg(VALIDATE)
        .arg(repo().join("schemas/tool.schema.json"))
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "{stdout}");
    for (line, file) in lines.iter().zip(&files) {
        let builtin = file.starts_with(repo().join("tools").to_str().unwrap());
        if builtin {
            assert_eq!(
                *line,
                format!("{file} ok"),
                "a built-in file fails the schema"
            );
        } else {
            assert!(line.starts_with(&format!("{file} invalid: ")), "{line}");
        }
    }
}
