//! What the benchmark binaries share: percentiles, a stdio MCP server driven with raw
//! JSON-RPC (no client library in the timing), and the start-up measurement.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Percentile of a sample (nearest rank).
pub fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    s[i.min(s.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A stdio MCP server driven with raw JSON-RPC lines (no client library in the timing).
pub struct Stdio_ {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Stdio_ {
    pub fn spawn(cmd: &[String], env: &[(String, String)]) -> Stdio_ {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Stdio_ {
            child,
            stdin,
            lines,
        }
    }

    pub async fn send(&mut self, v: &Value) {
        let mut l = v.to_string();
        l.push('\n');
        self.stdin.write_all(l.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next response (skipping notifications and log lines a peer might print).
    pub async fn response(&mut self) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
                .await
                .expect("server hung")
                .unwrap()
                .expect("server exited");
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v.get("id").is_some()
            {
                return v;
            }
        }
    }

    pub async fn initialize(&mut self) {
        self.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})).await;
        self.response().await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }

    pub fn peak_rss_kb(&self) -> u64 {
        let pid = self.child.id().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub async fn close(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

pub fn call(id: i64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// Spawn -> initialize result, and -> tools/list result, `n` times.
pub async fn startup(
    cmd: &[String],
    env: &[(String, String)],
    n: usize,
) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut init, mut list, mut tools) = (Vec::new(), Vec::new(), 0);
    for i in 0..n + 2 {
        let t0 = Instant::now();
        let mut s = Stdio_::spawn(cmd, env);
        s.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})).await;
        s.response().await;
        let t1 = t0.elapsed();
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await;
        let r = s.response().await;
        let t2 = t0.elapsed();
        tools = r["result"]["tools"].as_array().map_or(0, |a| a.len());
        s.close().await;
        if i >= 2 {
            // two warm-ups: page cache, first-run caches
            init.push(ms(t1));
            list.push(ms(t2));
        }
    }
    (init, list, tools)
}
