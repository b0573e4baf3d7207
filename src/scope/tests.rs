//! Rendered session policies, snapshotted so a reviewer sees the exact JSON that goes to STS.
//! The proofs that these documents allow only the call's own action on its own resource are in
//! tests/integration/scope_proofs.rs (evaluated with iam-rs).

use serde_json::{Map, Value, json};

use super::*;
use crate::catalogue::{Catalogue, args};

fn env() -> Environment {
    Environment::for_tests("us-east-1")
}

fn rendered(tool: &str, input: Value) -> String {
    let c = Catalogue::builtin().unwrap();
    let t = c.get(tool).unwrap();
    let input: Map<String, Value> = input.as_object().unwrap().clone();
    let a = args::validate(t, &input, &["staging"]).unwrap();
    let p = render(t, &env(), &a).unwrap();
    let pretty: Value = serde_json::from_str(&p.json).unwrap();
    serde_json::to_string_pretty(&pretty).unwrap()
}

#[test]
fn list_volumes_policy() {
    insta::assert_snapshot!(rendered(
        "list_volumes",
        json!({"environment": "staging", "tags": {"app": "api"}})
    ));
}

#[test]
fn read_logs_policy() {
    insta::assert_snapshot!(rendered(
        "read_logs",
        json!({"environment": "staging", "log_group": "/app/staging/api"})
    ));
}

#[test]
fn same_call_same_bytes() {
    let a = rendered(
        "read_logs",
        json!({"environment": "staging", "log_group": "/a", "limit": 5}),
    );
    let b = rendered(
        "read_logs",
        json!({"limit": 5, "log_group": "/a", "environment": "staging"}),
    );
    assert_eq!(a, b);
}

#[test]
fn unsafe_values_never_reach_an_arn() {
    let e = env();
    for bad in ["a*", "a?b", "${account}", "x\"y", "a\\b", ""] {
        let mut a = args::Args::new();
        a.insert("log_group".into(), json!(bad));
        let r = fill_arn(
            "arn:${partition}:logs:${region}:${account}:log-group:${log_group}",
            &e,
            &a,
        );
        assert!(
            matches!(r, Err(ScopeError::UnsafeValue(_))),
            "{bad:?} gave {r:?}"
        );
    }
}

#[test]
fn oversized_policies_fail_closed() {
    let c = Catalogue::builtin().unwrap();
    let t = c.get("read_logs").unwrap();
    let mut a = args::Args::new();
    a.insert("environment".into(), json!("staging"));
    a.insert("log_group".into(), json!("/".repeat(1000)));
    assert!(matches!(render(t, &env(), &a), Err(ScopeError::TooLarge(n)) if n > MAX_POLICY_CHARS));
}
