//! rmcp's client over the built binary (stdio), and what every MCP test asserts about leaks.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;

use super::{Moto, airlock_bin, repo};

#[derive(Clone)]
pub struct TestClient;

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("airlock-tests", "1.0.0"),
        )
    }
}

/// A running `airlock serve` with its stderr captured to a file.
pub struct Server {
    pub client: RunningService<RoleClient, TestClient>,
    pub stderr: PathBuf,
    pub _home: tempfile::TempDir,
}

/// What the agent sees of one call.
#[derive(Debug)]
pub struct Answer {
    pub is_error: bool,
    pub body: Value,
    pub text: String,
}

pub const ASSUME_ROLE_LOG: &str = "AssumeRole with a per-call session policy";

impl Server {
    pub async fn start(moto: Option<&Moto>, policy: &Path) -> Server {
        Self::start_with(moto, policy, &[]).await
    }

    pub async fn start_with(
        moto: Option<&Moto>,
        policy: &Path,
        extra: &[(String, String)],
    ) -> Server {
        let home = tempfile::tempdir().unwrap();
        let stderr = home.path().join("stderr.log");
        let mut env = match moto {
            Some(m) => m.airlock_env(home.path()),
            None => vec![
                ("HOME".into(), home.path().display().to_string()),
                ("AIRLOCK_LOG".into(), "airlock=debug,warn".into()),
            ],
        };
        env.extend(extra.iter().cloned());
        let policy = policy.to_path_buf();
        let cmd = tokio::process::Command::new(airlock_bin()).configure(|c| {
            c.arg("serve")
                .arg("--policy")
                .arg(&policy)
                .env_clear()
                .envs(env);
        });
        let file = std::fs::File::create(&stderr).unwrap();
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let client = TestClient.serve(transport).await.expect("MCP initialize");
        Server {
            client,
            stderr,
            _home: home,
        }
    }

    pub async fn call(&self, tool: &str, args: Value) -> Answer {
        let r = self
            .client
            .call_tool(
                CallToolRequestParams::new(tool.to_string())
                    .with_arguments(args.as_object().unwrap().clone()),
            )
            .await
            .expect("a tool result, not a protocol error");
        let text = r
            .content
            .iter()
            .filter_map(|c| c.as_text())
            .map(|t| t.text.clone())
            .collect::<String>();
        let body = r
            .structured_content
            .clone()
            .unwrap_or_else(|| serde_json::from_str(&text).unwrap());
        Answer {
            is_error: r.is_error == Some(true),
            body,
            text,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn assume_role_count(&self) -> usize {
        self.stderr().matches(ASSUME_ROLE_LOG).count()
    }
}

pub fn demo_policy() -> PathBuf {
    repo().join("policy.toml")
}

/// Nothing credential-shaped in what the agent saw or what the server logged.
pub fn assert_no_credentials(moto: &Moto, results: &[&str], stderr: &str) {
    let (key, secret) = moto.broker_key();
    let temp_key = regex::Regex::new(r"ASIA[A-Z0-9]{16}").unwrap();
    for (what, text) in results
        .iter()
        .map(|r| ("tool result", *r))
        .chain([("stderr", stderr)])
    {
        assert!(!text.contains(&secret), "broker secret in {what}");
        assert!(!text.contains(&key), "broker key id in {what}");
        assert!(
            !temp_key.is_match(text),
            "a temporary access key id in {what}"
        );
        assert!(!text.contains("FQoGZXIvYXdzE"), "a session token in {what}");
    }
}
