//! What the integration tests share: a real moto server on a free loopback port (started per
//! test, killed on drop, and killed by the kernel if the test process dies first), seeded by
//! tests/fixtures/seed.py with IAM enforcement switched on; the real `airlock` binary run to
//! completion ([`airlock`]); rmcp's client over it ([`mcp`]); a whole deployment with its human
//! side ([`rig`]); and the scope proofs' evaluator ([`proofs`]).

#![allow(dead_code, unused_imports)]

pub mod mcp;
pub mod proofs;
pub mod rig;

pub use mcp::{Answer, Server, assert_no_credentials, demo_policy};
pub use rig::{
    PASS, Rig, assert_failed_because, init_key, pty, short_cooldown, sign_policy_as_owner, sql,
};

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The built-in tools, by name in catalogue order: the one hand-written list every test pins
/// (tests/fixtures/builtin-tools.txt; adding a built-in tool means adding it there).
pub fn builtin_tools() -> Vec<&'static str> {
    include_str!("../../fixtures/builtin-tools.txt")
        .lines()
        .collect()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn airlock_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlock"))
}

/// The Python virtual environment scripts/setup makes (moto, the MCP SDK).
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("AIRLOCK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let p = venv.join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup (or scripts/test) first",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Make a child die with the test process, even on abort.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub struct Moto {
    child: Child,
    pub url: String,
    pub seed: Value,
}

impl Moto {
    /// Start, seed, and switch IAM enforcement on.
    pub fn start() -> Moto {
        for attempt in 0..3 {
            match Self::try_start() {
                Ok(m) => return m,
                Err(e) if attempt < 2 => eprintln!("moto did not start ({e}); retrying"),
                Err(e) => panic!("moto did not start: {e}"),
            }
        }
        unreachable!()
    }

    fn try_start() -> Result<Moto, String> {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(venv_bin("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        let mut moto = Moto {
            child,
            url,
            seed: Value::Null,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("no answer on its port within 30 s".into());
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new(venv_bin("python"))
            .arg(repo().join("tests/fixtures/seed.py"))
            .args(["--endpoint", &moto.url])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "seeding failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        moto.seed = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        Ok(moto)
    }

    pub fn volume(&self, name: &str) -> String {
        self.seed["volumes"][name].as_str().unwrap().to_string()
    }

    pub fn secret_values(&self) -> Vec<String> {
        self.seed["secrets"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    pub fn broker_key(&self) -> (String, String) {
        (
            self.seed["access_key_id"].as_str().unwrap().to_string(),
            self.seed["secret_access_key"].as_str().unwrap().to_string(),
        )
    }

    /// The environment `airlock serve` gets: the broker's throwaway keys, the local endpoint,
    /// and nothing from the developer's own AWS configuration.
    pub fn airlock_env(&self, home: &Path) -> Vec<(String, String)> {
        let (k, s) = self.broker_key();
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), home.display().to_string()),
            ("AWS_ACCESS_KEY_ID".into(), k),
            ("AWS_SECRET_ACCESS_KEY".into(), s),
            ("AWS_ENDPOINT_URL".into(), self.url.clone()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            (
                "AWS_CONFIG_FILE".into(),
                home.join("no-aws-config").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                home.join("no-aws-credentials").display().to_string(),
            ),
            ("AIRLOCK_LOG".into(), "airlock=debug,warn".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished `airlock` command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Run `airlock ARGS` to completion, in a new session without a controlling terminal (as an
/// agent's shell that pipes its commands), dying with the test.
pub fn airlock(args: &[&str], env: &[(String, String)]) -> Run {
    airlock_in(None, args, env)
}

/// [`airlock`] with `dir` as the working directory.
pub fn airlock_in(dir: Option<&Path>, args: &[&str], env: &[(String, String)]) -> Run {
    let mut cmd = Command::new(airlock_bin());
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    // A new session has no controlling terminal: /dev/tty is unavailable, as for an agent's
    // shell that pipes its commands.
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    // Read both pipes to the end together: a child filling one while we wait on the other
    // would block forever.
    let out = cmd
        .spawn()
        .expect("spawn airlock")
        .wait_with_output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).to_string(),
        err: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// A policy like the repository's, written to a temp dir, with `edit` applied to its text.
pub fn policy_with(dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let p = dir.join("policy.toml");
    std::fs::write(&p, edit(text)).unwrap();
    p
}

/// The repository's policy with every environment pointed at `url` (for in-process engines,
/// which must not set process-wide environment variables).
pub fn policy_text_with_endpoint(url: &str) -> String {
    std::fs::read_to_string(repo().join("policy.toml"))
        .unwrap()
        .replace(
            "\nregion = \"us-east-1\"",
            &format!("\nregion = \"us-east-1\"\nendpoint = \"{url}\""),
        )
        .replace(
            "\nregion = \"us-west-2\"",
            &format!("\nregion = \"us-west-2\"\nendpoint = \"{url}\""),
        )
}

/// Run the venv's Python with the arguments `args` adds; it must succeed. Returns its stdout.
pub fn python(args: impl FnOnce(&mut Command) -> &mut Command) -> Vec<u8> {
    let mut cmd = Command::new(venv_bin("python"));
    let out = args(&mut cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Run a Python script that prints one JSON document (see [`python`]); returns the document.
pub fn python_json(args: impl FnOnce(&mut Command) -> &mut Command) -> Value {
    serde_json::from_slice(&python(args)).unwrap()
}

/// Run scripts/demo_client.py (the official Python MCP SDK) in `--json` mode against the real
/// binary with `policy`; it must succeed. Returns (stdout, stderr).
pub fn run_demo_client(policy: &Path, env: &[(String, String)]) -> (String, String) {
    let out = Command::new(venv_bin("python"))
        .arg(repo().join("scripts/demo_client.py"))
        .arg(airlock_bin())
        .arg(policy)
        .arg("--json")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

/// (tool, is_error) for each call the demo client's `--json` report `r` made, in order.
pub fn call_outcomes(r: &Value) -> Vec<(&str, bool)> {
    r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["tool"].as_str().unwrap(),
                c["is_error"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// An in-process engine over the repository's policy pointed at `moto`, with the broker holding
/// moto's throwaway keys (no process-wide environment variables in tests).
pub fn moto_engine(
    moto: &Moto,
) -> (
    std::sync::Arc<airlock::engine::Engine>,
    std::sync::Arc<airlock::credentials::StsBroker>,
) {
    use std::sync::Arc;
    let text = policy_text_with_endpoint(&moto.url);
    let catalogue = airlock::catalogue::Catalogue::builtin().unwrap();
    let file = airlock::config::source::SourceFile::new("policy.toml", text);
    let policy = airlock::policy::Policy::parse(&file, Some(&catalogue)).unwrap();
    let (k, s) = moto.broker_key();
    let broker = Arc::new(airlock::credentials::StsBroker::with_base_credentials(
        policy.session_duration,
        aws_credential_types::Credentials::new(k, s, None, None, "test"),
    ));
    let engine =
        airlock::engine::Engine::new(Arc::new(policy), Arc::new(catalogue), broker.clone());
    (Arc::new(engine), broker)
}
