//! Policy parsing errors point at policy.toml:LINE:COL; decisions follow deny > approve > allow.

use super::*;
use crate::catalogue::Catalogue;
use crate::config::source::SourceFile;

const BASE: &str = r#"version = 1

[environments.staging]
account = "123456789012"
region = "us-east-1"
agent_role = "arn:aws:iam::123456789012:role/agent"

[environments.prod]
account = "210987654321"
region = "eu-west-1"
agent_role = "arn:aws:iam::210987654321:role/agent"

[protected]
ids = ["vol-0123456789abcdef0"]
tags = ["env=prod"]

[[rules]]
tools = ["*"]
environments = ["staging"]
decision = "allow"

[[rules]]
tools = ["read_logs"]
environments = ["staging"]
resources = ["/secret/*"]
decision = "deny"
reason = "no secrets"

[[rules]]
tools = ["read_logs"]
environments = ["prod"]
resources = ["/app/prod/*"]
decision = "approve"
approvers = 2
cooldown = "1h"
"#;

fn parse(text: &str) -> Result<Policy, SourceErrors> {
    let c = Catalogue::builtin().unwrap();
    Policy::parse(&SourceFile::new("policy.toml", text), Some(&c))
}

fn refused(text: &str, needle: &str, expect: &str) {
    let errs = parse(text).expect_err("policy must be refused");
    let e = errs
        .0
        .iter()
        .find(|e| e.message.contains(expect))
        .unwrap_or_else(|| panic!("no error mentions {expect:?}: {errs}"));
    let want = SourceFile::new("x", text).line_col(text.find(needle).expect("needle"));
    assert_eq!((e.line, e.col), want, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("policy.toml:{}:{}: ", want.0, want.1)),
        "{e}"
    );
}

fn decide(p: &Policy, tool: &str, env: &str, res: &[&str]) -> Verdict {
    let res: Vec<String> = res.iter().map(|s| s.to_string()).collect();
    p.decide(&CallFacts {
        tool,
        risk: Risk::Read,
        environment: env,
        resources: &res,
    })
}

#[test]
fn the_repository_policy_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy.toml");
    let c = Catalogue::builtin().unwrap();
    let p = Policy::load(&path, Some(&c)).expect("policy.toml is valid");
    assert_eq!(p.environment_names(), ["prod", "staging"]);
}

#[test]
fn decisions() {
    let p = parse(BASE).unwrap();
    let v = decide(&p, "list_volumes", "staging", &[]);
    assert_eq!(
        (v.decision, v.matched.as_str()),
        (Decision::Allow, "rule #1 (policy.toml line 17)")
    );
    // A matching deny wins over an earlier allow.
    let v = decide(&p, "read_logs", "staging", &["/secret/db"]);
    assert_eq!(
        (v.decision, v.reason.as_str()),
        (Decision::Deny, "no secrets")
    );
    // No rule for prod volumes: default deny, and it says so.
    let v = decide(&p, "list_volumes", "prod", &[]);
    assert_eq!(
        (v.decision, v.matched.as_str()),
        (Decision::Deny, "no rule matched")
    );
    assert!(v.reason.contains("describe_access"));
    // Resource globs: all resources must fit.
    let v = decide(&p, "read_logs", "prod", &["/app/prod/api"]);
    assert_eq!(v.decision, Decision::Approve);
    assert_eq!(v.rule.as_ref().unwrap().approvers, 2);
    let v = decide(&p, "read_logs", "prod", &["/app/prod/api", "/other"]);
    assert_eq!(v.decision, Decision::Deny);
    // Protected ids are refused before any rule.
    let v = decide(&p, "list_volumes", "staging", &["vol-0123456789abcdef0"]);
    assert_eq!(
        (v.decision, v.matched.as_str()),
        (Decision::Deny, "protected resources")
    );
}

#[test]
fn protection_by_tag() {
    let p = parse(BASE).unwrap();
    let tags = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    assert!(p.is_protected("vol-1", &tags));
    assert!(!p.is_protected("vol-1", &BTreeMap::new()));
}

#[test]
fn unknown_key() {
    refused(
        &BASE.replace("version = 1", "version = 1\nverson = 2"),
        "verson",
        "unknown field `verson`",
    );
}

#[test]
fn bad_account() {
    refused(
        &BASE.replace("\"123456789012\"\nregion", "\"12345\"\nregion"),
        "\"12345\"",
        "12-digit",
    );
}

#[test]
fn bad_region() {
    refused(
        &BASE.replace("\"us-east-1\"", "\"useast\""),
        "\"useast\"",
        "not an AWS region",
    );
}

#[test]
fn role_in_another_account() {
    refused(
        &BASE.replace(
            "arn:aws:iam::123456789012:role/agent",
            "arn:aws:iam::999999999999:role/agent",
        ),
        "\"arn:aws:iam::999999999999",
        "agent_role must be a role ARN in this environment's account",
    );
}

#[test]
fn unknown_tool_and_environment_in_rules() {
    refused(
        &BASE.replace(
            "tools = [\"read_logs\"]\nenvironments = [\"prod\"]",
            "tools = [\"read_log\"]\nenvironments = [\"prod\"]",
        ),
        "\"read_log\"",
        "unknown tool `read_log`",
    );
    refused(
        &BASE.replace(
            "environments = [\"prod\"]",
            "environments = [\"production\"]",
        ),
        "\"production\"",
        "unknown environment `production`",
    );
}

#[test]
fn bad_decision_and_cooldown() {
    refused(
        &BASE.replace("decision = \"deny\"", "decision = \"block\""),
        "\"block\"",
        "must be \"allow\", \"deny\" or \"approve\"",
    );
    refused(
        &BASE.replace("cooldown = \"1h\"", "cooldown = \"soon\""),
        "\"soon\"",
        "not a duration",
    );
}

#[test]
fn session_duration_bounds() {
    let text = BASE.replace(
        "version = 1",
        "version = 1\n[settings]\nsession_duration = \"5m\"",
    );
    refused(&text, "\"5m\"", "between 15m");
}

#[test]
fn syntax_errors_have_positions() {
    let errs = parse("version = 1\n[environments.staging\n").unwrap_err();
    assert_eq!(errs.0[0].line, 2, "{errs}");
}

#[test]
fn wrong_version() {
    refused(
        &BASE.replace("version = 1", "version = 2"),
        "2",
        "set `version = 1`",
    );
}
