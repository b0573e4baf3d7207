//! The credential cache, counted in the broker itself against moto's real STS: identical scopes
//! make one AssumeRole (also under concurrency), distinct scopes one each.

use crate::support::*;
use airlock::credentials::CredentialBroker;
use airlock::engine::CallContext;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_assume_role_per_distinct_scope() {
    let moto = Moto::start();
    let (engine, broker) = moto_engine(&moto);
    let ctx = CallContext {
        client_name: "tests".into(),
        client_version: "1".into(),
        session_id: "s1".into(),
    };

    // 20 concurrent calls with one scope: the misses collapse into one STS call.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (e, c) = (engine.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            e.call(
                "read_logs",
                json!({"environment": "staging", "log_group": "/app/staging/api"})
                    .as_object()
                    .unwrap(),
                &c,
            )
            .await
        }));
    }
    for t in tasks {
        let a = t.await.unwrap();
        assert!(a.is_ok(), "{a:?}");
    }
    assert_eq!(broker.assume_role_calls(), 1);

    // Arguments that do not change the scope (filters, limits) reuse it.
    let a = engine.call("read_logs", json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 3, "filter_pattern": "GET"}).as_object().unwrap(), &ctx).await;
    assert!(a.is_ok(), "{a:?}");
    assert_eq!(broker.assume_role_calls(), 1);

    // Distinct scopes: one each, then cached.
    for round in 0..2 {
        for call in [
            json!({"environment": "staging", "log_group": "/app/staging/worker"}),
            json!({"environment": "staging"}),
            json!({"environment": "prod"}),
        ] {
            let tool = if call.get("log_group").is_some() {
                "read_logs"
            } else {
                "list_volumes"
            };
            let a = engine.call(tool, call.as_object().unwrap(), &ctx).await;
            assert!(a.is_ok(), "{a:?}");
        }
        assert_eq!(broker.assume_role_calls(), 4, "after round {round}");
    }
}
