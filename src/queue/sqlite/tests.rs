//! The SQLite store against a real file: transitions are conditional, and `verify` finds an
//! edited, deleted or reordered audit event.

use std::sync::Arc;

use serde_json::json;

use super::SqliteStore;
use crate::queue::{Call, NewRequest, Queue, QueueError, State};

fn new_request(n: u32) -> NewRequest {
    NewRequest {
        call: Call {
            tool: "request_delete_volume".into(),
            environment: "staging".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            resource_arn: format!("arn:aws:ec2:us-east-1:123456789012:volume/vol-{n:08x}"),
            arguments: json!({"volume_id": format!("vol-{n:08x}")}),
        },
        resource_id: format!("vol-{n:08x}"),
        policy_hash: "p".into(),
        rule: "rule #1".into(),
        approvers_required: 1,
        cooldown_ms: 0,
        reason: "r".into(),
        client_name: "c".into(),
        client_version: "1".into(),
        session_id: "s".into(),
        resource_json: "{}".into(),
        ttl_ms: 60_000,
    }
}

/// A queue with two requests and a few transitions: 5 events.
async fn queue(dir: &tempfile::TempDir) -> (Queue, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(&dir.path().join("q.db")).await.unwrap());
    let q = Queue::over(store.clone(), "q.db".into());
    let a = q.create(&new_request(1), "agent", 1).await.unwrap();
    let b = q.create(&new_request(2), "agent", 2).await.unwrap();
    q.transition(
        &a.id,
        &[State::Pending],
        State::Denied,
        "cli:x",
        "denied",
        json!({}),
        3,
    )
    .await
    .unwrap();
    q.transition(
        &b.id,
        &[State::Pending],
        State::Cancelled,
        "cli:y",
        "cancelled",
        json!({}),
        4,
    )
    .await
    .unwrap();
    q.note(
        Some(&b.id),
        "cli:z",
        "approval_refused",
        json!({"reason": "no terminal"}),
        5,
    )
    .await
    .unwrap();
    assert!(q.verify_audit().await.unwrap().ok());
    (q, store)
}

async fn tamper((q, store): &(Queue, Arc<SqliteStore>), sql: &'static str) -> Vec<String> {
    sqlx::raw_sql(sql).execute(&store.pool).await.unwrap();
    q.verify_audit().await.unwrap().problems
}

#[tokio::test]
async fn the_policy_signature_mark_only_rises_and_reports_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).await.unwrap();
    let p = "/etc/airlock/policy.toml";
    assert_eq!(q.newest_policy_signature(p).await.unwrap(), None);
    assert_eq!(
        q.note_policy_signature(p, 100, "alice", "h1", 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        q.note_policy_signature(p, 200, "bob", "h2", 2)
            .await
            .unwrap(),
        None
    );
    // The same signature again, and an older one.
    assert_eq!(
        q.note_policy_signature(p, 200, "bob", "h2", 3)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        q.note_policy_signature(p, 100, "alice", "h1", 4)
            .await
            .unwrap(),
        Some((200, "bob".to_string()))
    );
    // Refusing records nothing; another policy file has its own mark.
    assert_eq!(
        q.newest_policy_signature(p).await.unwrap(),
        Some((200, "bob".to_string()))
    );
    assert_eq!(
        q.note_policy_signature("/other/policy.toml", 50, "carol", "h3", 5)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn conditional_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).await.unwrap();
    let r = q.create(&new_request(1), "agent", 1).await.unwrap();
    q.transition(
        &r.id,
        &[State::Pending],
        State::Cancelled,
        "a",
        "cancelled",
        json!({}),
        2,
    )
    .await
    .unwrap();
    let again = q
        .transition(
            &r.id,
            &[State::Pending],
            State::Denied,
            "a",
            "denied",
            json!({}),
            3,
        )
        .await;
    assert!(
        matches!(again, Err(QueueError::WrongState { .. })),
        "{again:?}"
    );
    assert!(matches!(
        q.get("r-000000000000").await,
        Err(QueueError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_edited_event_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir).await;
    let p = tamper(
        &q,
        "UPDATE audit SET actor = 'cli:someone-else' WHERE seq = 3",
    )
    .await;
    assert!(
        p.iter()
            .any(|m| m.contains("event 3") && m.contains("was edited")),
        "{p:?}"
    );
}

#[tokio::test]
async fn a_deleted_event_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir).await;
    let p = tamper(&q, "DELETE FROM audit WHERE seq = 2").await;
    assert!(p.iter().any(|m| m.contains("event 2 is missing")), "{p:?}");
}

#[tokio::test]
async fn reordered_events_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir).await;
    let p = tamper(&q, "UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -3;").await;
    assert!(
        p.iter()
            .any(|m| m.contains("does not follow the event before it")),
        "{p:?}"
    );
}

#[tokio::test]
async fn a_rewritten_chain_still_does_not_explain_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir).await;
    // Dropping a request's last events and the row itself would be consistent; dropping
    // only the events is not.
    let p = tamper(&q, "DELETE FROM audit WHERE seq >= 4").await;
    assert!(
        p.iter()
            .any(|m| m
                .contains("is `cancelled` but its last audited transition made it `pending`")),
        "{p:?}"
    );
}
