//! The engine in-process with the fake broker and a fake endpoint: a refused call mints
//! nothing and sends nothing; an allowed one mints once, for exactly its own scope.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{CallContext, Engine, ErrorKind, ToolOutput};
use crate::aws::fake::FakeAws;
use crate::catalogue::Catalogue;
use crate::config::source::SourceFile;
use crate::credentials::fake::FakeBroker;
use crate::credentials::{CredentialBroker, Role};
use crate::policy::Policy;

fn engine() -> (Engine, Arc<FakeBroker>, Arc<FakeAws>) {
    let text = include_str!("../../policy.toml")
        .replace("\nids = []\n", "\nids = [\"vol-0000000000000dead\"]\n");
    assert!(text.contains("vol-0000000000000dead"));
    let catalogue = Arc::new(Catalogue::builtin().unwrap());
    let policy = Policy::parse(&SourceFile::new("policy.toml", text), Some(&catalogue)).unwrap();
    let broker = Arc::new(FakeBroker::new());
    let aws = Arc::new(FakeAws::new(|c| match c.action.as_str() {
        "DescribeVolumes" => Ok(
            json!({"volumeSet": [{"volumeId": "vol-0123456789abcdef0", "status": "available", "size": "8"}]}),
        ),
        _ => Ok(json!({})),
    }));
    let e = Engine::new(Arc::new(policy), catalogue, broker.clone()).with_aws(aws.clone());
    (e, broker, aws)
}

fn ctx() -> CallContext {
    CallContext {
        client_name: "test".into(),
        client_version: "1".into(),
        session_id: "abc".into(),
    }
}

#[tokio::test]
async fn a_refusal_mints_nothing_and_sends_nothing() {
    let (e, broker, aws) = engine();
    let refused: [(&str, Value, &str); 6] = [
        ("no_such_tool", json!({}), "unknown_tool"),
        (
            "list_volumes",
            json!({"environment": "nowhere"}),
            "invalid_argument",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": ["vol-*"]}),
            "invalid_argument",
        ),
        (
            "read_logs",
            json!({"environment": "prod", "log_group": "/app/prod/api"}),
            "refused",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/other/api"}),
            "refused",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": ["vol-0000000000000dead"]}),
            "refused",
        ),
    ];
    for (tool, args, kind) in refused {
        let r = e.call(tool, args.as_object().unwrap(), &ctx()).await;
        let err = r.expect_err(tool);
        assert_eq!(err.kind.code(), kind, "{tool} {args}: {err:?}");
    }
    assert_eq!(broker.assume_role_calls(), 0, "{:?}", broker.minted());
    assert!(aws.calls().is_empty(), "{:?}", aws.calls());
}

#[tokio::test]
async fn an_allowed_call_mints_once_for_its_own_scope() {
    let (e, broker, aws) = engine();
    let args = json!({"environment": "staging", "volume_ids": ["vol-0123456789abcdef0"]});
    let out = e
        .call("list_volumes", args.as_object().unwrap(), &ctx())
        .await
        .unwrap();
    let ToolOutput::Listing(l) = out else {
        panic!("{out:?}")
    };
    assert_eq!(l.count, 1);
    let minted = broker.minted();
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0].role, Role::Agent);
    assert_eq!(
        minted[0].role_arn,
        "arn:aws:iam::123456789012:role/airlock-agent-staging"
    );
    let policy: Value = serde_json::from_str(&minted[0].policy_json).unwrap();
    assert_eq!(
        policy["Statement"][0]["Action"],
        json!(["ec2:DescribeVolumes"])
    );
    assert_eq!(aws.calls()[0].region, "us-east-1");
    assert_eq!(
        aws.calls()[0].params["VolumeId"],
        json!(["vol-0123456789abcdef0"])
    );
}

#[tokio::test]
async fn an_aws_refusal_is_an_access_denied_error_with_its_code() {
    let (e, broker, _) = engine();
    broker.refuse_with("AccessDenied");
    let args = json!({"environment": "staging"});
    let err = e
        .call("list_volumes", args.as_object().unwrap(), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::AwsAccessDenied { .. }),
        "{err:?}"
    );
    assert!(
        err.what_you_can_do
            .unwrap()
            .contains("do not look for other credentials")
    );
}
