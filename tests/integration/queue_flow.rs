//! Destructive requests end to end, against moto with IAM enforcement on, the real binary, a
//! real SQLite file, and approvals typed into a real pseudo-terminal: the agent requests over
//! MCP, a person approves, the executor waits out the cooldown, backs up, deletes; and every
//! shortcut an agent could take fails with a clear message and an audit trace.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_path_backs_up_then_deletes_after_the_cooldown() {
    let rig = Rig::new(short_cooldown);
    let vol = rig.moto.volume("staging_api");
    let agent = rig.agent().await;
    let id = rig.request_delete(&agent, &vol).await;

    // The person on call sees it.
    let Run { code, out, err: _ } = rig.cli(&["requests", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("pending") && out.contains(&vol),
        "{out}"
    );
    let Run {
        code: _,
        out,
        err: _,
    } = rig.cli(&["requests", "list", "--state", "pending", "--json"]);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["resource"]["size_gib"], 20);
    let Run {
        code: _,
        out,
        err: _,
    } = rig.cli(&["requests", "show", &id]);
    assert!(
        out.contains("EBS snapshot in us-east-1, copied to us-west-2"),
        "{out}"
    );
    assert!(out.contains("replaced; data migrated"), "{out}");

    // Nothing runs before approval.
    let Run { code, out, err } = rig.executor_once(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(rig.volume_exists(&vol));

    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &vol, PASS, None);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("approved by alice"), "{screen}");
    let v = rig.show(&id);
    assert_eq!(v["state"], "approved");

    // The executor does nothing while the cooldown runs (when it ran early enough to tell).
    let before = airlock::timefmt::now_ms();
    let Run {
        code: _,
        out,
        err: _,
    } = rig.executor_once(&[]);
    let due = airlock::timefmt::parse_instant_ms(v["not_before"].as_str().unwrap()).unwrap();
    if before < due - 500 {
        assert!(out.is_empty(), "ran before its cooldown ended: {out}");
        assert!(rig.volume_exists(&vol));
    }

    let done = rig.execute_when_due(&id);
    assert_eq!(done["state"], "executed", "{done}");
    assert!(!rig.volume_exists(&vol), "the volume is still there");
    let snap = done["outcome"]["snapshot_id"].as_str().unwrap();
    let copy = done["outcome"]["copy_snapshot_id"].as_str().unwrap();
    assert_eq!(
        rig.aws(&["snapshot", "us-east-1", snap])["state"],
        "completed"
    );
    assert_eq!(
        rig.aws(&["snapshot", "us-west-2", copy])["state"],
        "completed"
    );

    // The agent can follow it to the end.
    let a = agent.call("get_request", json!({"request_id": id})).await;
    assert_eq!(a.body["state"], "executed");
    assert_eq!(a.body["backup"]["snapshot_id"], json!(snap));

    let (code, out) = rig.audit_verify();
    assert_eq!(code, 0, "{out}");
    let events = rig.audit_events(&id);
    for e in [
        "requested",
        "approval_recorded",
        "approved",
        "claimed",
        "backup_started",
        "backup_copy_started",
        "backup_done",
        "delete_sent",
        "executed",
    ] {
        assert!(events.contains(&e.to_string()), "no {e} event: {events:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_deny_and_expiry_never_execute() {
    // Requests expire 3 s after they are made; the demo's 10-minute cooldown stays.
    let rig = Rig::new(|t| t.replace("request_ttl = \"24h\"", "request_ttl = \"3s\""));
    let agent = rig.agent().await;
    let key = rig.approver("alice", true);

    // Cancelled during the cooldown.
    let v1 = rig.moto.volume("staging_api");
    let cancelled = rig.request_delete(&agent, &v1).await;
    let (code, screen) = rig.approve(&cancelled, &key, &v1, PASS, None);
    assert_eq!(code, 0, "{screen}");
    let Run {
        code: _,
        out,
        err: _,
    } = rig.executor_once(&[]);
    assert!(out.is_empty(), "ran during the cooldown: {out}");
    assert_eq!(rig.state(&cancelled), "approved");
    let a = agent
        .call(
            "cancel_request",
            json!({"request_id": cancelled, "reason": "not needed"}),
        )
        .await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(a.body["state"], "cancelled");

    // Denied.
    let v2 = rig.moto.volume("staging_web");
    let denied = rig.request_delete(&agent, &v2).await;
    let Run { code, out, err } = rig.cli(&[
        "deny",
        &denied,
        "--reason",
        "still in use by the batch jobs",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("denied"));
    let (code, screen) = rig.approve(&denied, &key, &v2, PASS, None);
    assert_eq!(code, 4, "a denied request was approved: {screen}");

    // Expired (nobody approved in time).
    let v3 = rig.moto.volume("staging_db");
    // Attached volumes are refused at request time: detach it first.
    assert_eq!(rig.aws(&["detach", &v3])["state"], "available");
    let expired = rig.request_delete(&agent, &v3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.state(&expired) != "expired" {
        assert!(Instant::now() < deadline, "never expired");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, _) = rig.approve(&expired, &key, &v3, PASS, None);
    assert_eq!(code, 4);

    let Run { code, out, err } = rig.executor_once(&[]);
    assert_eq!(code, 0, "{out}{err}");
    for (id, v, state) in [
        (&cancelled, &v1, "cancelled"),
        (&denied, &v2, "denied"),
        (&expired, &v3, "expired"),
    ] {
        assert_eq!(rig.state(id), state);
        assert!(rig.volume_exists(v), "{v} ({state}) was deleted");
    }
    // The agent cannot cancel what is finished.
    let a = agent
        .call("cancel_request", json!({"request_id": denied}))
        .await;
    assert!(a.is_error);
    assert_eq!(a.body["error"], "wrong_state");
    let (code, out) = rig.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_shortcuts_to_approval_all_fail() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let key = rig.approver("alice", true);
    let vol = rig.moto.volume("staging_api");
    let id = rig.request_delete(&agent, &vol).await;

    // No terminal (an agent's shell pipes its commands).
    let Run { code, out, err } = rig.cli(&["approve", &id, "--key", key.to_str().unwrap()]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("needs a terminal"), "{err}");
    // Wrong typed id, wrong passphrase.
    let (code, screen) = rig.approve(&id, &key, "vol-00000000", PASS, None);
    assert_eq!(code, 4, "{screen}");
    assert!(screen.contains("Not approved"), "{screen}");
    let (code, screen) = rig.approve(&id, &key, &vol, "guess", None);
    assert_eq!(code, 4, "{screen}");
    assert!(screen.contains("Wrong passphrase"), "{screen}");
    assert_eq!(rig.state(&id), "pending");
    let refusals = rig
        .audit_events(&id)
        .iter()
        .filter(|e| *e == "approval_refused")
        .count();
    assert_eq!(refusals, 3, "each refused attempt leaves an audit trace");

    // A key of the agent's own, trusted only by a trust file of its own: approve accepts it
    // with that file, the executor (with the operator's trust file) does not.
    let own_trust = rig.dir.path().join("agent-trust.toml");
    let mallory = rig.approver("mallory", false);
    // Trust mallory's own key in the agent's own trust file.
    let pubkey = {
        let text = std::fs::read_to_string(&mallory).unwrap();
        let k = airlock::approval::ApproverKey::from_encrypted_pem(&text, PASS).unwrap();
        k.public().to_string()
    };
    std::fs::write(
        &own_trust,
        format!("[[approver]]\nname = \"mallory\"\npublic_key = \"{pubkey}\"\n"),
    )
    .unwrap();
    let (code, screen) = rig.approve(&id, &mallory, &vol, PASS, Some(&own_trust));
    assert_eq!(code, 0, "{screen}");
    assert_eq!(rig.state(&id), "approved");
    let done = rig.execute_when_due(&id);
    assert_eq!(done["state"], "failed", "{done}");
    assert_failed_because(&done, "not in the trust file");
    assert!(rig.volume_exists(&vol));

    // Writing `approved` straight into the SQLite file.
    let v2 = rig.moto.volume("staging_web");
    let forged = rig.request_delete(&agent, &v2).await;
    sql(
        &rig.db,
        &format!("UPDATE requests SET state = 'approved', not_before = 0 WHERE id = '{forged}'"),
    );
    let Run {
        code: _,
        out,
        err: _,
    } = rig.executor_once(&[]);
    assert!(out.contains(&format!("{forged} failed")), "{out}");
    assert!(
        rig.show(&forged)["outcome"]["error"]
            .as_str()
            .unwrap()
            .contains("0 valid approval(s)")
    );
    assert!(rig.volume_exists(&v2));
    let (code, out) = rig.audit_verify();
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("changed outside airlock"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_and_edited_approvals_are_refused() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let key = rig.approver("alice", true);
    let (va, vb, vc) = (
        rig.moto.volume("staging_api"),
        rig.moto.volume("staging_web"),
        rig.moto.volume("staging_db"),
    );
    assert_eq!(rig.aws(&["detach", &vc])["state"], "available");
    let a = rig.request_delete(&agent, &va).await;
    let b = rig.request_delete(&agent, &vb).await;
    let c = rig.request_delete(&agent, &vc).await;
    assert_eq!(rig.approve(&a, &key, &va, PASS, None).0, 0);
    assert_eq!(rig.approve(&c, &key, &vc, PASS, None).0, 0);

    // Replay: A's valid approval copied onto B.
    sql(&rig.db, &format!(
        "INSERT INTO approvals SELECT '{b}', approver, public_key, approved_at, not_before, signature FROM approvals WHERE request_id = '{a}';
         UPDATE requests SET state = 'approved', not_before = (SELECT not_before FROM requests WHERE id = '{a}') WHERE id = '{b}';"
    ));
    // Edit: C's arguments point at A's volume after approval, with the hash recomputed.
    let call_json: String = sql(
        &rig.db,
        &format!("SELECT call_json FROM requests WHERE id = '{c}'"),
    )
    .trim()
    .to_string();
    let edited = call_json.replace(&vc, &va);
    let hash = airlock::queue::call_hash(&edited);
    sql(
        &rig.db,
        &format!(
            "UPDATE requests SET call_json = '{edited}', call_hash = '{hash}' WHERE id = '{c}'"
        ),
    );

    for id in [&a, &b, &c] {
        rig.execute_when_due(id);
    }
    assert_eq!(rig.state(&a), "executed");
    assert!(!rig.volume_exists(&va));
    let b_err = rig.show(&b)["outcome"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b_err.contains("does not verify"), "{b_err}");
    assert!(rig.volume_exists(&vb));
    let c_err = rig.show(&c)["outcome"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        c_err.contains("columns do not match") || c_err.contains("does not verify"),
        "{c_err}"
    );
    assert!(rig.volume_exists(&vc));
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_resources_cannot_be_requested_approved_or_executed() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let key = rig.approver("alice", true);
    // Tagged env=prod: refused at request time, before anything is queued.
    let a = agent
        .call("request_delete_volume", json!({"environment": "staging", "volume_id": rig.moto.volume("prod_in_east"), "reason": "x"}))
        .await;
    assert!(a.is_error && a.text.contains("protected"), "{}", a.text);
    // A rule that denies: refused at once, with the rule's reason, nothing queued.
    let a = agent
        .call(
            "request_delete_volume",
            json!({"environment": "prod", "volume_id": rig.moto.volume("prod_db"), "reason": "x"}),
        )
        .await;
    assert!(a.is_error, "{}", a.text);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("platform team's own change process"),
        "{}",
        a.text
    );
    let Run {
        code: _,
        out,
        err: _,
    } = rig.cli(&["requests", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out).unwrap().len(),
        0,
        "a refused request was queued"
    );
    // Tagged after approval, behind airlock's back: the executor looks again and refuses.
    let vol = rig.moto.volume("staging_api");
    let id = rig.request_delete(&agent, &vol).await;
    assert_eq!(rig.approve(&id, &key, &vol, PASS, None).0, 0);
    rig.aws(&["tag", &vol, "env", "prod"]);
    let done = rig.execute_when_due(&id);
    assert_eq!(done["state"], "failed");
    assert_failed_because(&done, "is protected now");
    assert!(rig.volume_exists(&vol));
    // A forged pending request for a protected volume: approve refuses before any prompt.
    let v2 = rig.moto.volume("staging_web");
    let id2 = rig.request_delete(&agent, &v2).await;
    sql(
        &rig.db,
        &format!(
            "UPDATE requests SET resource_json = json_set(resource_json, '$.protected', json('true')) WHERE id = '{id2}'"
        ),
    );
    let Run { code, out, err } = rig.cli(&["approve", &id2, "--key", key.to_str().unwrap()]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("is protected"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn races_and_a_crash_between_backup_and_delete() {
    let rig = Rig::new(|t| short_cooldown(t).replace("approvers = 1", "approvers = 2"));
    let agent = rig.agent().await;
    let alice = rig.approver("alice", true);
    let bob = rig.approver("bob", true);

    // Two approvers at once: both recorded, approved exactly once.
    let vol = rig.moto.volume("staging_api");
    let id = rig.request_delete(&agent, &vol).await;
    let (r1, r2) = std::thread::scope(|s| {
        let h1 = s.spawn(|| rig.approve(&id, &alice, &vol, PASS, None));
        let h2 = s.spawn(|| rig.approve(&id, &bob, &vol, PASS, None));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert_eq!((r1.0, r2.0), (0, 0), "{}\n{}", r1.1, r2.1);
    let v = rig.show(&id);
    assert_eq!(v["state"], "approved");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 2);
    assert_eq!(
        rig.audit_events(&id)
            .iter()
            .filter(|e| *e == "approved")
            .count(),
        1
    );

    // Two executors against one due request: one deletion, one snapshot.
    rig.wait_until_due(&id);
    let (o1, o2) = std::thread::scope(|s| {
        let h1 = s.spawn(|| rig.executor_once(&[]));
        let h2 = s.spawn(|| rig.executor_once(&[]));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    let executed = [&o1.out, &o2.out]
        .iter()
        .filter(|o| o.contains(&format!("{id} executed")))
        .count();
    assert_eq!(executed, 1, "{o1:?}\n{o2:?}");
    assert_eq!(rig.state(&id), "executed");
    assert_eq!(
        rig.aws(&["snapshots", "us-east-1", &vol])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // SIGKILL after the backup, before the delete; the restart finishes it exactly once.
    let v2 = rig.moto.volume("staging_web");
    let id2 = rig.request_delete(&agent, &v2).await;
    let (r1, r2) = (
        rig.approve(&id2, &alice, &v2, PASS, None),
        rig.approve(&id2, &bob, &v2, PASS, None),
    );
    assert_eq!((r1.0, r2.0), (0, 0));
    rig.wait_until_due(&id2);
    let Run { code, out, err } = rig.executor_once(&[("AIRLOCK_FAULT", "kill-after-backup")]);
    assert_eq!(code, -1, "the executor was not killed: {out}{err}");
    let mid = rig.show(&id2);
    assert_eq!(mid["state"], "executing");
    assert!(rig.volume_exists(&v2), "deleted before the crash point");
    let snaps = rig.aws(&["snapshots", "us-east-1", &v2]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let Run { code, out, err } = rig.executor_once(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("already complete (resuming)"), "{err}");
    let done = rig.show(&id2);
    assert_eq!(done["state"], "executed", "{done}");
    assert!(!rig.volume_exists(&v2));
    assert_eq!(
        rig.aws(&["snapshots", "us-east-1", &v2])
            .as_array()
            .unwrap()
            .len(),
        1,
        "a second snapshot was taken"
    );
    assert_eq!(done["outcome"]["snapshot_id"], snaps[0]["id"]);
    let events = rig.audit_events(&id2);
    assert_eq!(
        events.iter().filter(|e| *e == "resumed").count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "delete_sent").count(),
        1,
        "{events:?}"
    );
    let (code, out) = rig.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_that_already_happened_is_recorded_as_done_once() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let key = rig.approver("alice", true);
    let vol = rig.moto.volume("staging_api");
    let id = rig.request_delete(&agent, &vol).await;
    assert_eq!(rig.approve(&id, &key, &vol, PASS, None).0, 0);
    rig.wait_until_due(&id);
    // Killed after DeleteVolume succeeded, before the outcome was written.
    let Run { code, out, err } = rig.executor_once(&[("AIRLOCK_FAULT", "kill-after-delete")]);
    assert_eq!(code, -1, "the executor was not killed: {out}{err}");
    assert!(!rig.volume_exists(&vol));
    assert_eq!(rig.state(&id), "executing");
    // The restart finds the volume gone after its own attempt: done, not failed.
    let Run { code, out, err } = rig.executor_once(&[]);
    assert_eq!(code, 0, "{out}{err}");
    let v = rig.show(&id);
    assert_eq!(v["state"], "executed", "{v}");
    assert!(
        v["outcome"]["summary"]
            .as_str()
            .unwrap()
            .contains("already gone after this request's own earlier attempt"),
        "{v}"
    );
    assert_eq!(
        rig.aws(&["snapshots", "us-east-1", &vol])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, out) = rig.audit_verify();
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_executor_credential_can_delete() {
    let rig = Rig::new(short_cooldown);
    let vol = rig.moto.volume("staging_web");
    // moto enforces the roles' own policies and trust policies.
    assert_eq!(
        rig.aws(&["delete-as", "airlock-agent-staging", &vol])["error"],
        "AccessDenied"
    );
    assert_eq!(
        rig.aws(&["assume-as-broker", "airlock-executor-staging"])["error"],
        "AccessDenied"
    );
    assert!(rig.volume_exists(&vol));
    // An executor started with the broker's credential (what `airlock serve` holds) cannot
    // assume the executor role: the approved request fails and nothing is deleted.
    let agent = rig.agent().await;
    let id = rig.request_delete(&agent, &vol).await;
    let key = rig.approver("alice", true);
    assert_eq!(rig.approve(&id, &key, &vol, PASS, None).0, 0);
    rig.wait_until_due(&id);
    let mut env = rig.moto.airlock_env(rig.dir.path());
    env.extend(rig.cli_env());
    let Run { code, out, err } = airlock(&["executor", "--once"], &env);
    assert_eq!(code, 4, "{out}{err}");
    let v = rig.show(&id);
    assert_eq!(v["state"], "failed");
    assert!(
        v["outcome"]["error"].as_str().unwrap().contains(
            "AssumeRole on arn:aws:iam::123456789012:role/airlock-executor-staging was refused"
        ),
        "{v}"
    );
    assert!(rig.volume_exists(&vol));
}
