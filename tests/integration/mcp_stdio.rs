//! The built binary driven over stdio by rmcp's client, against moto with IAM enforcement on.

use crate::support::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn initialize_reports_airlock_and_serves_the_catalogue() {
    let s = Server::start(None, &demo_policy()).await;
    let info = s.client.peer_info().unwrap();
    let imp = info.server_info.clone().unwrap();
    assert_eq!(imp.name, "airlock");
    assert_eq!(imp.version, env!("CARGO_PKG_VERSION"));
    assert!(
        info.instructions
            .as_deref()
            .unwrap()
            .contains("must not look for one")
    );
    let tools = s.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, builtin_tools());
    for t in &tools {
        assert_eq!(
            t.input_schema.get("additionalProperties"),
            Some(&json!(false)),
            "{}",
            t.name
        );
        let ann = t.annotations.as_ref().unwrap();
        let destructive = t.name.starts_with("request_delete_");
        let read_only = !(destructive || t.name == "cancel_request");
        assert_eq!(ann.read_only_hint, Some(read_only), "{}", t.name);
        assert_eq!(ann.destructive_hint, Some(destructive), "{}", t.name);
    }
    // An unknown tool is a protocol error, as MCP specifies.
    let e = s
        .client
        .call_tool(CallToolRequestParams::new("delete_everything"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown tool"), "{e}");
    // describe_access needs no AWS at all.
    let a = s.call("describe_access", json!({})).await;
    assert!(!a.is_error, "{}", a.text);
    let staging = a.body["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "staging")
        .unwrap();
    let allowed: Vec<&str> = staging["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tool"].as_str().unwrap())
        .collect();
    // Every built-in tool but these is under staging's `allowed` (the deletes are under
    // `needs_approval`, below).
    let not_allowed = [
        "cancel_request",
        "describe_access",
        "get_request",
        "request_delete_db_instance",
        "request_delete_log_group",
        "request_delete_snapshot",
        "request_delete_volume",
    ];
    let want: Vec<&str> = builtin_tools()
        .iter()
        .copied()
        .filter(|t| !not_allowed.contains(t))
        .collect();
    assert_eq!(allowed, want);
    let read_logs = staging["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tool"] == "read_logs")
        .unwrap();
    assert_eq!(
        read_logs["only_resources_matching"],
        json!(["/app/staging/*"])
    );
    let approval: Vec<&str> = staging["needs_approval"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        approval,
        [
            "request_delete_db_instance",
            "request_delete_log_group",
            "request_delete_snapshot",
            "request_delete_volume"
        ]
    );
    assert_eq!(staging["needs_approval"][0]["cooldown"], "10m");
    assert_eq!(a.body["protected"]["tags"], json!(["env=prod"]));
    assert_eq!(s.assume_role_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_volumes_under_a_scoped_session() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &demo_policy()).await;
    let a = s
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert!(!a.is_error, "{}", a.text);
    let items = a.body["items"].as_array().unwrap();
    let by_id = |id: &str| {
        items
            .iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {}", a.text))
    };
    // us-east-1 only: the prod volumes in us-west-2 are not here.
    assert!(items.iter().all(|v| v["id"] != moto.volume("prod_db")));
    let db = by_id(&moto.volume("staging_db"));
    assert_eq!(db["size_gib"], 100);
    assert_eq!(db["state"], "in-use");
    assert_eq!(
        db["attachments"][0]["instance_id"],
        moto.seed["instance_id"]
    );
    assert_eq!(db["tags"]["app"], "db");
    assert_eq!(db["protected"], false);
    assert_eq!(
        by_id(&moto.volume("prod_in_east"))["protected"],
        true,
        "tagged env=prod"
    );
    assert_eq!(a.body["scope"]["actions"], json!(["ec2:DescribeVolumes"]));

    // Filters reach EC2.
    let a = s
        .call(
            "list_volumes",
            json!({"environment": "staging", "tags": {"app": "api"}}),
        )
        .await;
    let ids: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [moto.volume("staging_api")]);
    let a = s
        .call(
            "list_volumes",
            json!({"environment": "staging", "states": ["in-use"], "tags": {"env": "staging"}}),
        )
        .await;
    let ids: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [moto.volume("staging_db")]);

    // The other environment: another region, another role.
    let a = s.call("list_volumes", json!({"environment": "prod"})).await;
    assert!(!a.is_error, "{}", a.text);
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|v| v["protected"] == true));

    // Same scope again: served from the cache; two scopes so far (staging x3 filters share
    // one policy, since DescribeVolumes is scoped by region, and prod).
    assert_eq!(s.assume_role_count(), 2, "{}", s.stderr());
    assert_no_credentials(&moto, &[a.text.as_str()], &s.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn read_logs_redacts_secrets_and_marks_untrusted_text() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &demo_policy()).await;
    let a = s
        .call(
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await;
    assert!(!a.is_error, "{}", a.text);
    let messages: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages.len() as u64,
        moto.seed["log_lines"].as_u64().unwrap()
    );
    // Ordinary lines are untouched, newest last.
    assert_eq!(messages[0], "GET /health 200 3ms");
    assert_eq!(*messages.last().unwrap(), "GET /api/v1/users 200 12ms");
    // No planted secret survives, whole or in part.
    for secret in moto.secret_values() {
        assert!(!a.text.contains(&secret), "secret leaked: {secret}");
        let fragment = &secret[secret.len() - 12..];
        assert!(
            !a.text.contains(fragment),
            "part of a secret leaked: {fragment}"
        );
    }
    assert_eq!(a.body["redacted"]["count"], 6, "{}", a.text);
    let kinds = a.body["redacted"]["kinds"].as_array().unwrap();
    for k in [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "bearer_token",
        "api_token",
        "connection_string_password",
    ] {
        assert!(kinds.contains(&json!(k)), "{k} not reported: {kinds:?}");
    }
    assert!(messages.iter().any(|m| {
        m.contains("postgres://app:[REDACTED:connection_string_password]@db.staging.internal")
    }));
    // Injected instructions come back as data, flagged as untrusted, and grant nothing.
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("SYSTEM NOTICE TO AI AGENTS"))
    );
    assert!(a.body["note"].as_str().unwrap().contains("untrusted"));

    // limit keeps the newest; a filter pattern reaches CloudWatch.
    let a = s
        .call(
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 2}),
        )
        .await;
    let messages: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "ERROR timeout talking to db.staging.internal after 5000ms",
            "GET /api/v1/users 200 12ms"
        ]
    );
    assert!(
        a.body["truncated"]
            .as_str()
            .unwrap()
            .contains("8 of 10 items left out"),
        "{}",
        a.text
    );
    let a = s.call("read_logs", json!({"environment": "staging", "log_group": "/app/staging/worker", "filter_pattern": "ERROR"})).await;
    let messages: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["ERROR job 3 failed"]);
    assert_no_credentials(&moto, &[a.text.as_str()], &s.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_named_and_mints_nothing() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let protected = moto.volume("staging_api");
    let policy = policy_with(dir.path(), |t| {
        t.replace("ids = []", &format!("ids = [\"{protected}\"]"))
    });
    let s = Server::start(Some(&moto), &policy).await;
    let now = airlock::timefmt::now_ms();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "list_volumes",
            json!({"environment": "qa"}),
            "environment",
            "unknown environment `qa`",
        ),
        ("list_volumes", json!({}), "environment", "is required"),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": ["vol-*"]}),
            "volume_ids[0]",
            "wildcards are not accepted",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": ["vol-1;x"]}),
            "volume_ids[0]",
            "does not match",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": ["arn:aws:ec2:us-east-1:999999999999:volume/vol-0123456789abcdef0"]}),
            "volume_ids[0]",
            "does not match",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": "vol-0123456789abcdef0"}),
            "volume_ids",
            "must be a list",
        ),
        (
            "list_volumes",
            json!({"environment": 7}),
            "environment",
            "must be a string",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "states": ["gone"]}),
            "states[0]",
            "is not one of",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "colour": "red"}),
            "colour",
            "does not take this argument",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/other/api"}),
            "",
            "no rule in policy.toml allows `read_logs`",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/*"}),
            "log_group",
            "wildcards are not accepted",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "start_time": now, "end_time": now - 60_000}),
            "start_time",
            "reversed",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-03-01T00:00:00Z"}),
            "start_time",
            "longer than the 7days",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "start_time": "yesterday"}),
            "start_time",
            "is not a time",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 5000}),
            "limit",
            "at most 1000",
        ),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "limit": "ten"}),
            "limit",
            "must be an integer",
        ),
        (
            "read_logs",
            json!({"environment": "prod", "log_group": "/app/prod/api"}),
            "",
            "production logs may hold customer data",
        ),
        (
            "list_volumes",
            json!({"environment": "staging", "volume_ids": [protected]}),
            "",
            "is a protected resource",
        ),
    ];
    for (tool, args, field, expect) in &cases {
        let a = s.call(tool, args.clone()).await;
        assert!(a.is_error, "{tool} {args} was not refused: {}", a.text);
        let msg = a.body["message"].as_str().unwrap();
        assert!(
            msg.contains(expect),
            "{tool} {args}: {msg:?} does not say {expect:?}"
        );
        if !field.is_empty() {
            assert_eq!(a.body["field"], json!(field), "{tool} {args}: {}", a.text);
            assert!(msg.contains(&format!("`{field}`")), "{msg}");
        } else {
            assert_eq!(a.body["error"], "refused");
            assert!(
                a.body["what_you_can_do"]
                    .as_str()
                    .unwrap()
                    .contains("describe_access")
            );
        }
    }
    assert_eq!(
        s.assume_role_count(),
        0,
        "a refused call minted a credential:\n{}",
        s.stderr()
    );
    // The counter is real: one good call mints one credential.
    let a = s
        .call(
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(s.assume_role_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_role_permission_really_fails() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with(dir.path(), |t| {
        t.replace("role/airlock-agent-staging", "role/airlock-agent-nologs")
    });
    let s = Server::start(Some(&moto), &policy).await;
    // The role may describe volumes...
    let a = s
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert!(!a.is_error, "{}", a.text);
    // ...but not read logs: moto enforces the role's own policy.
    let a = s
        .call(
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await;
    assert!(a.is_error, "{}", a.text);
    assert_eq!(a.body["error"], "aws_access_denied", "{}", a.text);
    // The AWS error code is named, not "Unknown": moto answers a denied awsJson request with
    // an XML error body, which the JSON protocol's error reader falls back to.
    assert!(
        a.text.contains("AccessDenied") && !a.text.contains("Unknown"),
        "{}",
        a.text
    );
    assert!(
        a.body["what_you_can_do"]
            .as_str()
            .unwrap()
            .contains("do not look for other credentials")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_the_broker_cannot_assume_is_refused_by_sts() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_with(dir.path(), |t| {
        t.replace("role/airlock-agent-staging", "role/someone-elses-role")
    });
    let s = Server::start(Some(&moto), &policy).await;
    let a = s
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert!(a.is_error, "{}", a.text);
    assert_eq!(a.body["error"], "aws_access_denied", "{}", a.text);
    assert!(
        a.body["message"].as_str().unwrap().contains(
            "AssumeRole on arn:aws:iam::123456789012:role/someone-elses-role was refused"
        ),
        "{}",
        a.text
    );
}
