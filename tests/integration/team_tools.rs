//! A team's own tools folder through the real binary: `airlock tools list` / `check` /
//! `schema`, and each unsafe-tool rule refused with FILE:LINE:COL.

use std::path::Path;

use serde_json::Value;

use crate::util::{airlock, repo};

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
    let (code, out, err) = airlock(&["tools", "list", "--tools", s(dir.path()), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 1, "the folder is the whole catalogue: {out}");
    assert_eq!(v[0]["name"], "describe_things");
    assert_eq!(v[0]["risk"], "read");
    assert_eq!(v[0]["actions"], serde_json::json!(["ec2:DescribeThings"]));
    assert_eq!(
        v[0]["resources"],
        serde_json::json!(["arn:${partition}:ec2:${region}:${account}:thing/${thing_id}"])
    );
    assert_eq!(v[0]["source"], s(&dir.path().join("describe_things.toml")));

    let (code, out, err) = airlock(&["tools", "list", "--builtin"], &[]);
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
    let (code, out, err) = airlock(&["tools", "list", "--policy", s(&policy)], &[]);
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
    let (code, out, err) = airlock(&argv, &[]);
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
    let (code, out, _) = airlock(&argv, &[]);
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
    let (code, out, err) = airlock(&["tools", "check", s(&good)], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 1 tool(s)"), "{out}");
}

#[test]
fn tools_check_without_files_checks_the_configured_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), TEAM_READ).unwrap();
    let (code, out, err) = airlock(&["tools", "check", "--tools", s(dir.path())], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("describe_things"), "{out}");
    // A second file with the same tool name: the folder is refused, naming both files.
    std::fs::write(dir.path().join("b.toml"), TEAM_READ).unwrap();
    let (code, _, err) = airlock(&["tools", "check", "--tools", s(dir.path())], &[]);
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
    let (code, out, err) = airlock(&["tools", "schema"], &[]);
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
