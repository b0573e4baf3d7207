//! Before and after, in one run: start-up (spawn -> initialize) and a warm `tools/call`
//! (list_volumes, read_logs against one moto) for a baseline binary and this build,
//! interleaved round by round so both see the same machine. `scripts/bench-ab REV` builds REV
//! and runs this; the table goes to stdout (and into docs/benchmarks.md by hand, with the
//! revisions it compared).
//!
//! Environment: AIRLOCK_AB_BASELINE = the baseline binary; AIRLOCK_BENCH_QUICK=1 for fewer
//! repetitions.

mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::time::Instant;

use common::{Stdio_, call, ms, pct, startup};
use serde_json::json;
use support::{Moto, airlock_bin, repo};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/ab.rs: run it with `scripts/bench-ab REV`; skipped under cargo test");
        return;
    }
    let Ok(base) = std::env::var("AIRLOCK_AB_BASELINE") else {
        eprintln!("AIRLOCK_AB_BASELINE is not set: give the baseline airlock binary");
        std::process::exit(2);
    };
    let quick = std::env::var("AIRLOCK_BENCH_QUICK").is_ok_and(|v| v == "1");
    let policy = repo().join("policy.toml").display().to_string();
    let serve = |bin: &str| {
        vec![
            bin.to_string(),
            "serve".into(),
            "--policy".into(),
            policy.clone(),
        ]
    };
    let builds = [
        ("before", serve(&base)),
        ("after", serve(&airlock_bin().display().to_string())),
    ];
    let home = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("HOME".to_string(), home.path().display().to_string()),
        ("AIRLOCK_LOG".to_string(), "warn".to_string()),
        (
            "AIRLOCK_DB".to_string(),
            home.path().join("q.db").display().to_string(),
        ),
    ];
    let rounds = if quick { 3 } else { 10 };
    let per = 10;
    let mut init = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, (_, cmd)) in builds.iter().enumerate() {
            init[i].extend(startup(cmd, &env, per).await.0);
        }
    }
    println!("| measure | before | after |\n|---|---|---|");
    println!(
        "| start-up, spawn -> initialize, median / p90 ({} spawns each) | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
        rounds * per,
        pct(&init[0], 50.0),
        pct(&init[0], 90.0),
        pct(&init[1], 50.0),
        pct(&init[1], 90.0)
    );
    let moto = Moto::start();
    env = moto.airlock_env(home.path());
    env.retain(|(k, _)| k != "AIRLOCK_LOG");
    env.push(("AIRLOCK_LOG".into(), "warn".into()));
    let calls = if quick { 100 } else { 300 };
    for (tool, args) in [
        ("list_volumes", json!({"environment": "staging"})),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 20}),
        ),
    ] {
        let mut servers = Vec::new();
        for (_, cmd) in &builds {
            let mut s = Stdio_::spawn(cmd, &env);
            s.initialize().await;
            s.send(&call(0, tool, args.clone())).await;
            s.response().await;
            servers.push(s);
        }
        let mut t = [Vec::new(), Vec::new()];
        for n in 0..calls {
            for (i, s) in servers.iter_mut().enumerate() {
                let at = Instant::now();
                s.send(&call(n as i64 + 1, tool, args.clone())).await;
                let r = s.response().await;
                t[i].push(ms(at.elapsed()));
                assert_eq!(r["result"]["isError"], false, "{r}");
            }
        }
        println!(
            "| `tools/call {tool}`, warm, p50 / p99 ({calls} calls each, alternating) | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            pct(&t[0], 50.0),
            pct(&t[0], 99.0),
            pct(&t[1], 50.0),
            pct(&t[1], 99.0)
        );
        for s in servers {
            s.close().await;
        }
    }
}
