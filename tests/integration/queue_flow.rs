//! Destructive requests end to end, against moto with IAM enforcement on, the real binary, a
//! real SQLite file, and approvals typed into a real pseudo-terminal: the agent requests over
//! MCP, a person approves, the executor waits out the cooldown, backs up, deletes; and every
//! shortcut an agent could take fails with a clear message and an audit trace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mcp_stdio::Server;
use crate::util::{Moto, airlock, airlock_bin, policy_with, python, python_json, repo};

pub const PASS: &str = "correct horse battery staple";

/// One deployment: moto, a policy, a queue file, a trust file and approver keys in a temp dir.
pub struct Rig {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    pub policy: PathBuf,
    pub db: PathBuf,
    pub trust: PathBuf,
    /// The approver key that signed the policy (trusted).
    pub owner: PathBuf,
    seed_file: PathBuf,
}

impl Rig {
    /// `edit` changes the repository's policy text (e.g. the cooldown).
    pub fn new(edit: impl FnOnce(String) -> String) -> Rig {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let policy = policy_with(dir.path(), edit);
        let seed_file = dir.path().join("seed.json");
        std::fs::write(&seed_file, moto.seed.to_string()).unwrap();
        let trust = dir.path().join("approvers.toml");
        std::fs::write(&trust, "# approvers trusted by the executor\n").unwrap();
        // The policy's owner reviews and signs it before any agent connects.
        let owner = sign_policy_as_owner(dir.path(), &policy, &trust);
        Rig {
            db: dir.path().join("queue.db"),
            policy,
            trust,
            owner,
            seed_file,
            dir,
            moto,
        }
    }

    /// Environment for the CLI commands a person runs (no AWS credentials at all).
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.dir.path().display().to_string()),
            ("AIRLOCK_DB".into(), self.db.display().to_string()),
            ("AIRLOCK_POLICY".into(), self.policy.display().to_string()),
            ("AIRLOCK_TRUST".into(), self.trust.display().to_string()),
            ("USER".into(), "oncall".into()),
        ]
    }

    /// The executor runs with the operator's credential, not the broker's.
    pub fn executor_env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.airlock_env(self.dir.path());
        env.retain(|(k, _)| {
            !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET_ACCESS_KEY")
        });
        env.push((
            "AWS_ACCESS_KEY_ID".into(),
            self.moto.seed["operator_access_key_id"]
                .as_str()
                .unwrap()
                .into(),
        ));
        env.push((
            "AWS_SECRET_ACCESS_KEY".into(),
            self.moto.seed["operator_secret_access_key"]
                .as_str()
                .unwrap()
                .into(),
        ));
        env.extend(self.cli_env());
        env
    }

    pub async fn agent(&self) -> Server {
        Server::start_with(
            Some(&self.moto),
            &self.policy,
            &[
                ("AIRLOCK_DB".into(), self.db.display().to_string()),
                ("AIRLOCK_TRUST".into(), self.trust.display().to_string()),
            ],
        )
        .await
    }

    /// The agent asks for a volume to be deleted; returns the request id.
    pub async fn request_delete(&self, agent: &Server, volume: &str) -> String {
        let a = agent
            .call("request_delete_volume", json!({"environment": "staging", "volume_id": volume, "reason": "replaced; data migrated"}))
            .await;
        assert!(!a.is_error, "{}", a.text);
        assert_eq!(a.body["state"], "pending");
        a.body["request_id"].as_str().unwrap().to_string()
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        airlock(args, &self.cli_env())
    }

    pub fn show(&self, id: &str) -> Value {
        let (code, out, err) = self.cli(&["requests", "show", id, "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    pub fn state(&self, id: &str) -> String {
        self.show(id)["state"].as_str().unwrap().to_string()
    }

    pub fn executor_once(&self, extra: &[(&str, &str)]) -> (i32, String, String) {
        let mut env = self.executor_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        airlock(&["executor", "--once", "--poll", "200ms"], &env)
    }

    pub fn audit_verify(&self) -> (i32, String) {
        let (code, out, err) = self.cli(&["audit", "verify"]);
        (code, format!("{out}{err}"))
    }

    pub fn audit_events(&self, id: &str) -> Vec<String> {
        let (_, out, _) = self.cli(&["audit", "show", "--json"]);
        let v: Vec<Value> = serde_json::from_str(&out).unwrap();
        v.iter()
            .filter(|e| e["request_id"] == json!(id))
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }

    /// What boto3 sees (tests/fixtures/aws_view.py), independent of airlock.
    pub fn aws(&self, args: &[&str]) -> Value {
        python_json(|c| {
            c.arg(repo().join("tests/fixtures/aws_view.py"))
                .arg(&self.seed_file)
                .args(args)
        })
    }

    pub fn volume_exists(&self, v: &str) -> bool {
        self.aws(&["volume", v])["exists"] == json!(true)
    }

    /// Create an approver key by typing its passphrase into a real terminal, and (optionally)
    /// trust it.
    pub fn approver(&self, name: &str, trusted: bool) -> PathBuf {
        let key = self.dir.path().join(format!("{name}.key"));
        let line = init_key(&key, name, &self.cli_env());
        if trusted {
            trust_key(&self.trust, name, &line);
        }
        key
    }

    /// `airlock policy sign` at a real terminal with `key` (and optionally another trust file).
    pub fn sign_policy(&self, key: &Path, trust: Option<&Path>) -> (i32, String) {
        let mut env = self.cli_env();
        if let Some(t) = trust {
            env.retain(|(k, _)| k != "AIRLOCK_TRUST");
            env.push(("AIRLOCK_TRUST".into(), t.display().to_string()));
        }
        sign_at_terminal(key, &env)
    }

    /// `airlock approve` at a real terminal: type `typed` as the resource id, then `pass`.
    /// Returns (exit code, everything the terminal showed).
    pub fn approve(
        &self,
        id: &str,
        key: &Path,
        typed: &str,
        pass: &str,
        trust: Option<&Path>,
    ) -> (i32, String) {
        let mut env = self.cli_env();
        if let Some(t) = trust {
            env.retain(|(k, _)| k != "AIRLOCK_TRUST");
            env.push(("AIRLOCK_TRUST".into(), t.display().to_string()));
        }
        let mut p = pty(&["approve", id, "--key", key.to_str().unwrap()], &env);
        let mut seen = String::new();
        // A refusal before the prompts (e.g. a request that is not pending) ends without them.
        if let Ok(s) = p.exp_string("to approve, anything else to stop: ") {
            seen.push_str(&s);
            p.send_line(typed).unwrap();
            if let Ok(s) = p.exp_string("Passphrase for") {
                seen.push_str(&s);
                p.send_line(pass).unwrap();
            }
        }
        seen.push_str(&p.exp_eof().unwrap_or_default());
        let code = match p.process().wait().unwrap() {
            rexpect::process::WaitStatus::Exited(_, c) => c,
            other => panic!("approve did not exit normally: {other:?}"),
        };
        (code, seen)
    }

    /// Wait (with a deadline) until an approved request's signed cooldown has passed.
    pub fn wait_until_due(&self, id: &str) {
        let due = airlock::timefmt::parse_instant_ms(self.show(id)["not_before"].as_str().unwrap())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while airlock::timefmt::now_ms() < due {
            assert!(Instant::now() < deadline, "{id} never became due");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run the executor until the request leaves `approved`/`executing` (it becomes due when
    /// its cooldown ends). Waits for an event, with a deadline; asserts no timing.
    pub fn execute_when_due(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, out, err) = self.executor_once(&[]);
            assert!(code == 0 || code == 4, "executor: {out}{err}");
            let v = self.show(id);
            if !matches!(v["state"].as_str(), Some("approved" | "executing")) {
                return v;
            }
            assert!(Instant::now() < deadline, "never became due: {v}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The request's recorded outcome says why it failed.
pub fn assert_failed_because(v: &Value, why: &str) {
    let err = v["outcome"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error outcome: {v}"));
    assert!(err.contains(why), "{v}");
}

/// `airlock approver init` at a real terminal; returns the `public_key = ...` line it prints.
pub fn init_key(key: &Path, name: &str, env: &[(String, String)]) -> String {
    let mut p = pty(
        &[
            "approver",
            "init",
            "--name",
            name,
            "--key",
            key.to_str().unwrap(),
        ],
        env,
    );
    p.exp_string("Passphrase (at least").unwrap();
    p.send_line(PASS).unwrap();
    p.exp_string("Passphrase again").unwrap();
    p.send_line(PASS).unwrap();
    let out = p.exp_eof().unwrap();
    out.lines()
        .find(|l| l.starts_with("public_key = "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string()
}

/// Add approver `name` with its `public_key = ...` line to a trust file.
pub fn trust_key(trust: &Path, name: &str, public_key_line: &str) {
    let mut t = std::fs::read_to_string(trust).unwrap_or_default();
    t.push_str(&format!(
        "\n[[approver]]\nname = \"{name}\"\n{public_key_line}\n"
    ));
    std::fs::write(trust, t).unwrap();
}

/// `airlock policy sign --key KEY` at a real terminal: types the hash prefix it shows, then
/// the passphrase. Returns (exit code, everything the terminal showed).
pub fn sign_at_terminal(key: &Path, env: &[(String, String)]) -> (i32, String) {
    let mut p = pty(&["policy", "sign", "--key", key.to_str().unwrap()], env);
    let mut seen = String::new();
    if let Ok((before, prompt)) =
        p.exp_regex(r"manifest hash \(([0-9a-f]{8})\) to sign, anything else to stop: ")
    {
        seen.push_str(&before);
        seen.push_str(&prompt);
        let prefix = prompt
            .split('(')
            .nth(1)
            .and_then(|x| x.get(..8))
            .unwrap()
            .to_string();
        p.send_line(&prefix).unwrap();
        if let Ok(s) = p.exp_string("Passphrase for") {
            seen.push_str(&s);
            p.send_line(PASS).unwrap();
        }
    }
    seen.push_str(&p.exp_eof().unwrap_or_default());
    let code = match p.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, c) => c,
        other => panic!("policy sign did not exit normally: {other:?}"),
    };
    (code, seen)
}

/// A trusted approver `owner` (key in `dir`, added to `trust`) signs `policy` at a terminal.
pub fn sign_policy_as_owner(dir: &Path, policy: &Path, trust: &Path) -> PathBuf {
    let env: Vec<(String, String)> = vec![
        ("HOME".into(), dir.display().to_string()),
        ("AIRLOCK_POLICY".into(), policy.display().to_string()),
        ("AIRLOCK_TRUST".into(), trust.display().to_string()),
        ("USER".into(), "owner".into()),
    ];
    let key = dir.join("owner.key");
    let line = init_key(&key, "owner", &env);
    trust_key(trust, "owner", &line);
    let (code, screen) = sign_at_terminal(&key, &env);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("policy signed by owner"), "{screen}");
    key
}

/// A command in a real pseudo-terminal (its controlling terminal).
pub fn pty(args: &[&str], env: &[(String, String)]) -> rexpect::session::PtySession {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty")
}

fn short_cooldown(t: String) -> String {
    t.replace("cooldown = \"10m\"", "cooldown = \"2s\"")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_path_backs_up_then_deletes_after_the_cooldown() {
    let rig = Rig::new(short_cooldown);
    let vol = rig.moto.volume("staging_api");
    let agent = rig.agent().await;
    let id = rig.request_delete(&agent, &vol).await;

    // The person on call sees it.
    let (code, out, _) = rig.cli(&["requests", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("pending") && out.contains(&vol),
        "{out}"
    );
    let (_, out, _) = rig.cli(&["requests", "list", "--state", "pending", "--json"]);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["resource"]["size_gib"], 20);
    let (_, out, _) = rig.cli(&["requests", "show", &id]);
    assert!(
        out.contains("EBS snapshot in us-east-1, copied to us-west-2"),
        "{out}"
    );
    assert!(out.contains("replaced; data migrated"), "{out}");

    // Nothing runs before approval.
    let (code, out, err) = rig.executor_once(&[]);
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
    let (_, out, _) = rig.executor_once(&[]);
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
    let (_, out, _) = rig.executor_once(&[]);
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
    let (code, out, err) = rig.cli(&[
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
    let expired = rig.request_delete(&agent, &v3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.state(&expired) != "expired" {
        assert!(Instant::now() < deadline, "never expired");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, _) = rig.approve(&expired, &key, &v3, PASS, None);
    assert_eq!(code, 4);

    let (code, out, err) = rig.executor_once(&[]);
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
    let (code, out, err) = rig.cli(&["approve", &id, "--key", key.to_str().unwrap()]);
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
    let (_, out, _) = rig.executor_once(&[]);
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
    let (_, out, _) = rig.cli(&["requests", "list", "--json"]);
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
    let (code, out, err) = rig.cli(&["approve", &id2, "--key", key.to_str().unwrap()]);
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
    let executed = [&o1.1, &o2.1]
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
    let (code, out, err) = rig.executor_once(&[("AIRLOCK_FAULT", "kill-after-backup")]);
    assert_eq!(code, -1, "the executor was not killed: {out}{err}");
    let mid = rig.show(&id2);
    assert_eq!(mid["state"], "executing");
    assert!(rig.volume_exists(&v2), "deleted before the crash point");
    let snaps = rig.aws(&["snapshots", "us-east-1", &v2]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let (code, out, err) = rig.executor_once(&[]);
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
    let (code, out, err) = rig.executor_once(&[("AIRLOCK_FAULT", "kill-after-delete")]);
    assert_eq!(code, -1, "the executor was not killed: {out}{err}");
    assert!(!rig.volume_exists(&vol));
    assert_eq!(rig.state(&id), "executing");
    // The restart finds the volume gone after its own attempt: done, not failed.
    let (code, out, err) = rig.executor_once(&[]);
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
    let (code, out, err) = airlock(&["executor", "--once"], &env);
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

/// Run SQL against the queue file the way an agent with a shell could (Python's sqlite3).
pub fn sql(db: &Path, statements: &str) -> String {
    let out = python(|c| {
        c.args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); cur=c.cursor()\nfor s in sys.argv[2].split(';\\n'):\n  r=cur.execute(s).fetchall()\n  [print(x[0]) for x in r]\nc.commit()",
            db.to_str().unwrap(),
            statements,
        ])
    });
    String::from_utf8_lossy(&out).to_string()
}
