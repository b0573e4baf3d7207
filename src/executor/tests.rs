//! The executor in-process: a real SQLite queue, the fake broker, a fake EC2 endpoint and a
//! clock moved by hand. A run stopped at each crash point (the task dropped there, as a
//! SIGKILL would leave it) is resumed by another executor once its lease runs out, and every
//! backup and the delete happen exactly once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{CrashHook, Executor};
use crate::approval::trust::TrustFile;
use crate::approval::{ApproverKey, approve};
use crate::aws::fake::{FakeAws, FakeCall};
use crate::backup::CrashPoint;
use crate::catalogue::Catalogue;
use crate::config::source::SourceFile;
use crate::credentials::Role;
use crate::credentials::fake::FakeBroker;
use crate::engine::{CallContext, Engine, ToolOutput};
use crate::policy::Policy;
use crate::policy::signature::{
    Integrity, Manifest, PolicySignature, signature_path, write_signature,
};
use crate::queue::{ClaimOwner, Queue, State};
use crate::timefmt::{Clock, now_ms};

const VOLUME: &str = "vol-0123456789abcdef0";

/// A clock a test moves.
struct Hand(AtomicI64);

impl Clock for Hand {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// EC2 as far as deleting a volume goes: one volume, snapshots by region and description.
#[derive(Default)]
struct Ec2 {
    volume_gone: bool,
    /// (region, id, description)
    snapshots: Vec<(String, String, String)>,
}

fn ec2(state: &Mutex<Ec2>, c: &FakeCall) -> Result<Value, crate::aws::AwsError> {
    let mut s = state.lock().unwrap();
    let p = &c.params;
    let n = s.snapshots.len();
    match c.action.as_str() {
        "DescribeVolumes" if s.volume_gone => Ok(json!({"volumeSet": []})),
        "DescribeVolumes" => Ok(json!({"volumeSet": [{
            "volumeId": VOLUME, "size": "8", "status": "available", "volumeType": "gp3",
            "availabilityZone": "us-east-1a", "encrypted": "false", "createTime": "2026-01-01T00:00:00Z",
            "tagSet": [{"key": "app", "value": "api"}],
        }]})),
        "CreateSnapshot" | "CopySnapshot" => {
            let id = format!("snap-{n:017x}");
            let d = p["Description"].as_str().unwrap_or_default().to_string();
            s.snapshots.push((c.region.clone(), id.clone(), d));
            Ok(json!({"snapshotId": id}))
        }
        "DescribeSnapshots" => {
            let want_desc = p["Filter"][0]["Value"][0].as_str();
            let want_id = p["SnapshotId"][0].as_str();
            let set: Vec<Value> = s
                .snapshots
                .iter()
                .filter(|(r, id, d)| {
                    *r == c.region
                        && want_desc.is_none_or(|w| w == d)
                        && want_id.is_none_or(|w| w == id)
                })
                .map(|(_, id, _)| json!({"snapshotId": id, "status": "completed", "progress": "100%"}))
                .collect();
            Ok(json!({"snapshotSet": set}))
        }
        "DeleteVolume" if s.volume_gone => Err(FakeAws::error("ec2", "InvalidVolume.NotFound")),
        "DeleteVolume" => {
            s.volume_gone = true;
            Ok(json!({"return": "true"}))
        }
        other => Err(FakeAws::error("ec2", &format!("Unexpected{other}"))),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    policy: Arc<Policy>,
    catalogue: Arc<Catalogue>,
    trust: std::path::PathBuf,
    queue: Arc<Queue>,
    aws: Arc<FakeAws>,
    broker: Arc<FakeBroker>,
    clock: Arc<Hand>,
    request_id: String,
}

/// A signed policy, a queued request for the volume, and one trusted approval whose cooldown
/// has passed on the hand clock.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let text = include_str!("../../policy.toml");
    std::fs::write(&path, text).unwrap();
    let catalogue = Arc::new(Catalogue::builtin().unwrap());
    let policy = Arc::new(Policy::parse(&SourceFile::new(&path, text), Some(&catalogue)).unwrap());
    let key = ApproverKey::generate("alice");
    let trust = dir.path().join("approvers.toml");
    std::fs::write(
        &trust,
        format!(
            "[[approver]]\nname = \"alice\"\npublic_key = \"{}\"\n",
            key.public()
        ),
    )
    .unwrap();
    let manifest = Manifest::of(&policy, &catalogue);
    write_signature(
        &signature_path(&path),
        &PolicySignature::sign(&key, &manifest, now_ms()),
    )
    .unwrap();

    let state = Arc::new(Mutex::new(Ec2::default()));
    let s2 = state.clone();
    let aws = Arc::new(FakeAws::new(move |c| ec2(&s2, c)));
    let broker = Arc::new(FakeBroker::new());
    let queue = Arc::new(Queue::open(&dir.path().join("queue.db")).await.unwrap());
    let engine = Engine::new(policy.clone(), catalogue.clone(), broker.clone())
        .with_aws(aws.clone())
        .with_queue_path(dir.path().join("queue.db"));
    let ctx = CallContext {
        client_name: "test".into(),
        client_version: "1".into(),
        session_id: "s1".into(),
    };
    let args = json!({"environment": "staging", "volume_id": VOLUME, "reason": "unused since the migration"});
    let out = engine
        .call("request_delete_volume", args.as_object().unwrap(), &ctx)
        .await
        .unwrap();
    let ToolOutput::Queued(q) = out else {
        panic!("{out:?}")
    };
    let r = queue.get(&q.request_id).await.unwrap();
    let approved_at = now_ms();
    let a = approve(&key, "alice", &r, approved_at, 10 * 60 * 1000);
    let not_before = a.not_before;
    queue
        .add_approval(&a, 1, 24 * 3600 * 1000, "cli:alice", approved_at)
        .await
        .unwrap();
    Setup {
        _dir: dir,
        policy,
        catalogue,
        trust,
        queue,
        aws,
        broker,
        clock: Arc::new(Hand(AtomicI64::new(not_before + 1))),
        request_id: r.id,
    }
}

impl Setup {
    fn executor(&self, owner: &str) -> Executor {
        let trust = TrustFile::load(&self.trust).unwrap();
        let integrity = Integrity::new(&self.policy, &self.catalogue, &self.trust);
        Executor::new(
            self.policy.clone(),
            self.catalogue.clone(),
            trust,
            self.queue.clone(),
            self.broker.clone(),
            Arc::new(|_: &str| {}),
            integrity,
        )
        .with_aws(self.aws.clone())
        .with_clock(self.clock.clone())
        .with_owner(ClaimOwner(format!("test-host:{owner}")))
        .with_lease(Duration::from_secs(60))
        .with_poll(Duration::from_millis(1))
    }

    /// One snapshot, one copy, one delete: nothing sent twice.
    fn assert_once_each(&self, what: &str) {
        let a = self.actions();
        for action in ["CreateSnapshot", "CopySnapshot", "DeleteVolume"] {
            assert_eq!(a.get(action), Some(&1), "{what}: {action} in {a:?}");
        }
    }

    fn actions(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in self.aws.calls() {
            *m.entry(c.action).or_default() += 1;
        }
        m
    }
}

/// A hook that stops the run at the `nth` time `point` is reached (from 1): it signals, then
/// waits forever; the test drops the run there.
fn stop_at(point: CrashPoint, nth: usize) -> (CrashHook, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let hook: CrashHook = Arc::new(move |p| {
        let tx = tx.clone();
        let hit = p == point && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth;
        Box::pin(async move {
            if hit {
                let _ = tx.send(());
                std::future::pending::<()>().await;
            }
        })
    });
    (hook, rx)
}

#[tokio::test]
async fn an_undisturbed_run_backs_up_copies_then_deletes_once() {
    let s = setup().await;
    let out = s.executor("a").run_once().await.unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].state, "executed", "{out:?}");
    s.assert_once_each("an undisturbed run");
    // The copy went to the backup region; the delete ran under the executor role only.
    let copy = s
        .aws
        .calls()
        .into_iter()
        .find(|c| c.action == "CopySnapshot")
        .unwrap();
    assert_eq!(copy.region, "us-west-2");
    let delete = s
        .aws
        .calls()
        .into_iter()
        .find(|c| c.action == "DeleteVolume")
        .unwrap();
    assert_eq!(delete.params["VolumeId"], VOLUME);
    let minted = s.broker.minted();
    assert!(
        minted
            .iter()
            .any(|m| m.tool == "request_delete_volume" && m.role == Role::Executor)
    );
    assert!(
        minted
            .iter()
            .filter(|m| m.tool == "request_delete_volume")
            .all(|m| m.role == Role::Executor)
    );
    assert!(s.queue.verify_audit().await.unwrap().ok());
}

#[tokio::test]
async fn each_crash_point_resumes_without_a_second_backup_or_delete() {
    let cases = [
        (
            CrashPoint::AfterBackupRequest,
            1,
            "after the snapshot was requested",
        ),
        (
            CrashPoint::AfterBackupRequest,
            2,
            "after the copy was requested",
        ),
        (CrashPoint::AfterBackup, 1, "after the backup was recorded"),
        (
            CrashPoint::AfterDelete,
            1,
            "after the delete, before its outcome",
        ),
    ];
    for (point, nth, what) in cases {
        let s = setup().await;
        let (hook, mut reached) = stop_at(point, nth);
        let first = s.executor("first").with_crash_hook(hook);
        // The run is dropped where the hook stops it, as a kill would leave it.
        tokio::select! {
            out = first.run_once() => panic!("{what}: the run ended without reaching its crash point: {out:?}"),
            r = reached.recv() => r.unwrap(),
        }
        let r = s.queue.get(&s.request_id).await.unwrap();
        assert_eq!(r.state, State::Executing, "{what}: {r:?}");
        // Before the lease runs out nobody takes it over.
        assert!(
            s.executor("second").run_once().await.unwrap().is_empty(),
            "{what}"
        );
        s.clock.0.fetch_add(61_000, Ordering::SeqCst);
        let out = s.executor("second").run_once().await.unwrap();
        assert_eq!(out.len(), 1, "{what}: {out:?}");
        assert_eq!(out[0].state, "executed", "{what}: {out:?}");
        s.assert_once_each(what);
        let events: Vec<String> = s
            .queue
            .events()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.request_id.as_deref() == Some(s.request_id.as_str()))
            .map(|e| e.event)
            .collect();
        assert!(
            events.contains(&"resumed".to_string()),
            "{what}: {events:?}"
        );
        assert!(s.queue.verify_audit().await.unwrap().ok(), "{what}");
    }
}

#[tokio::test]
async fn an_unsigned_policy_holds_the_request_and_sends_nothing() {
    let s = setup().await;
    std::fs::remove_file(signature_path(&s.policy.path)).unwrap();
    let out = s.executor("a").run_once().await.unwrap();
    assert_eq!(out[0].state, "held", "{out:?}");
    assert_eq!(
        s.aws.count("CreateSnapshot") + s.aws.count("DeleteVolume"),
        0
    );
    assert_eq!(
        s.queue.get(&s.request_id).await.unwrap().state,
        State::Approved
    );
}
