//! One deployment for a test: moto, a policy, a queue file, a trust file and approver keys in a
//! temp dir, and the human side (approver keys, policy signatures, approvals typed into a
//! pseudo-terminal).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Moto, Run, Server, airlock, airlock_bin, policy_with, python, python_json, repo};

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

    pub fn cli(&self, args: &[&str]) -> Run {
        airlock(args, &self.cli_env())
    }

    pub fn show(&self, id: &str) -> Value {
        let Run { code, out, err } = self.cli(&["requests", "show", id, "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    pub fn state(&self, id: &str) -> String {
        self.show(id)["state"].as_str().unwrap().to_string()
    }

    pub fn executor_once(&self, extra: &[(&str, &str)]) -> Run {
        let mut env = self.executor_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        airlock(&["executor", "--once", "--poll", "200ms"], &env)
    }

    pub fn audit_verify(&self) -> (i32, String) {
        let Run { code, out, err } = self.cli(&["audit", "verify"]);
        (code, format!("{out}{err}"))
    }

    pub fn audit_events(&self, id: &str) -> Vec<String> {
        let Run {
            code: _,
            out,
            err: _,
        } = self.cli(&["audit", "show", "--json"]);
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
            let Run { code, out, err } = self.executor_once(&[]);
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

/// The repository policy with 2 s cooldowns instead of 10 minutes.
pub fn short_cooldown(t: String) -> String {
    t.replace("cooldown = \"10m\"", "cooldown = \"2s\"")
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
