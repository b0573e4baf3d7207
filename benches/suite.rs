//! The benchmark suite behind docs/benchmarks.md: what an agent and an operator feel, measured
//! side by side. Run with `scripts/bench` (it installs moto and the peers first). Timings are
//! measured here, never asserted in tests. Writes docs/benchmarks.md and prints the table.
//!
//! Environment: AIRLOCK_BENCH_PEERS = a file from scripts/bench-peers (NAME\tENV\tCOMMAND per
//! line); AIRLOCK_BENCH_QUICK=1 for fewer repetitions.

mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use common::{Stdio_, call, ms, pct, startup};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use airlock::aws;
use airlock::catalogue::{Catalogue, args};
use airlock::config::source::SourceFile;
use airlock::credentials::{CredentialBroker, Role, ScopeRequest, StsBroker};
use airlock::engine::CallContext;
use airlock::policy::Policy;
use airlock::queue::sqlite::SqliteStore;
use airlock::queue::{Approval, Call, ClaimOwner, NewRequest, Queue};
use airlock::redact::Redactor;
use airlock::scope;
use aws_credential_types::Credentials;
use serde_json::{Map, Value, json};
use support::{Moto, airlock_bin, repo};

fn quick() -> bool {
    std::env::var("AIRLOCK_BENCH_QUICK").is_ok_and(|v| v == "1")
}

struct Row {
    what: String,
    figure: String,
    goal: String,
    how: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench. `cargo test --all-targets` runs this target without it:
    // there, only check that it starts (the suite takes minutes and writes docs/).
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benches/suite.rs: run it with `scripts/bench` (cargo bench); skipped under cargo test"
        );
        return;
    }
    let q = quick();
    let mut rows: Vec<Row> = Vec::new();
    let policy = repo().join("policy.toml").display().to_string();
    let airlock_cmd = vec![
        airlock_bin().display().to_string(),
        "serve".into(),
        "--policy".into(),
        policy.clone(),
    ];
    let home = tempfile::tempdir().unwrap();
    let base_env = vec![
        ("HOME".to_string(), home.path().display().to_string()),
        ("AIRLOCK_LOG".to_string(), "warn".to_string()),
        (
            "AIRLOCK_DB".to_string(),
            home.path().join("q.db").display().to_string(),
        ),
    ];

    // 1. Start-up, against the peers in the same run.
    let n = if q { 10 } else { 50 };
    let (init, list, tools) = startup(&airlock_cmd, &base_env, n).await;
    let (a_init, a_list) = (pct(&init, 50.0), pct(&list, 50.0));
    eprintln!("airlock: initialize {a_init:.2} ms, tools/list {a_list:.2} ms");
    rows.push(Row {
        what: format!("start-up: spawn -> initialize (airlock, {tools} tools)"),
        figure: format!("median {:.2} ms, p90 {:.2} ms", a_init, pct(&init, 90.0)),
        goal: format!("<= 5 ms: {}", if a_init <= 5.0 { "met" } else { "MISSED" }),
        how: format!("{n} spawns of the release binary after 2 warm-ups; raw JSON-RPC over pipes"),
    });
    rows.push(Row {
        what: "start-up: spawn -> tools/list (airlock)".into(),
        figure: format!("median {:.2} ms, p90 {:.2} ms", a_list, pct(&list, 90.0)),
        goal: "-".into(),
        how: "same runs".into(),
    });
    if let Ok(spec) = std::env::var("AIRLOCK_BENCH_PEERS")
        .and_then(|p| std::fs::read_to_string(p).map_err(|_| std::env::VarError::NotPresent))
    {
        for line in spec.lines().filter(|l| !l.trim().is_empty()) {
            let parts: Vec<&str> = line.split('\t').collect();
            if parts.len() != 3 {
                continue;
            }
            let env: Vec<(String, String)> = parts[1]
                .split_whitespace()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            let cmd: Vec<String> = parts[2].split_whitespace().map(str::to_string).collect();
            let pn = if q { 5 } else { 20 };
            let (pi, pl, pt) = startup(&cmd, &env, pn).await;
            let (m, ml) = (pct(&pi, 50.0), pct(&pl, 50.0));
            eprintln!("{}: initialize {m:.1} ms", parts[0]);
            rows.push(Row {
                what: format!("start-up: spawn -> initialize ({}, {pt} tools)", parts[0]),
                figure: format!(
                    "median {m:.1} ms, p90 {:.1} ms; tools/list {ml:.1} ms",
                    pct(&pi, 90.0)
                ),
                goal: format!(
                    "airlock is {:.0}x faster{}",
                    m / a_init,
                    if parts[0].contains("aws") {
                        if m / a_init >= 100.0 {
                            " (goal >100x: met)"
                        } else {
                            " (goal >100x: MISSED)"
                        }
                    } else {
                        ""
                    }
                ),
                how: format!(
                    "{pn} spawns after 2 warm-ups, started offline as scripts/bench-peers prints"
                ),
            });
        }
    } else {
        eprintln!("AIRLOCK_BENCH_PEERS not set: peers skipped (scripts/bench sets it)");
    }

    // 2. Guard overhead per call, against moto, warm and cold.
    let moto = Moto::start();
    let mut env = moto.airlock_env(home.path());
    env.retain(|(k, _)| k != "AIRLOCK_LOG");
    env.push(("AIRLOCK_LOG".into(), "warn".into()));
    env.push((
        "AIRLOCK_DB".into(),
        home.path().join("q.db").display().to_string(),
    ));
    let m = if q { 100 } else { 500 };
    let k = if q { 5 } else { 15 };
    for (tool, args) in [
        ("list_volumes", json!({"environment": "staging"})),
        (
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 20}),
        ),
    ] {
        // Cold: the first call of a fresh server (AssumeRole included).
        let mut cold = Vec::new();
        for _ in 0..k {
            let mut s = Stdio_::spawn(&airlock_cmd, &env);
            s.initialize().await;
            let t = Instant::now();
            s.send(&call(1, tool, args.clone())).await;
            let r = s.response().await;
            cold.push(ms(t.elapsed()));
            assert_eq!(r["result"]["isError"], false, "{r}");
            s.close().await;
        }
        // Warm: repeated calls on one server (credentials cached).
        let mut s = Stdio_::spawn(&airlock_cmd, &env);
        s.initialize().await;
        let mut warm = Vec::new();
        for i in 0..m + 10 {
            let t = Instant::now();
            s.send(&call(i as i64 + 1, tool, args.clone())).await;
            s.response().await;
            if i >= 10 {
                warm.push(ms(t.elapsed()));
            }
        }
        s.close().await;
        // Direct: the same signed request to the same endpoint, same data, in-process.
        let text = support::policy_text_with_endpoint(&moto.url);
        let cat = Catalogue::builtin().unwrap();
        let pol = Policy::parse(&SourceFile::new("policy.toml", text), Some(&cat)).unwrap();
        let spec_tool = cat.get(tool).unwrap();
        let input: Map<String, Value> = args.as_object().unwrap().clone();
        let validated = args::validate(spec_tool, &input, &pol.environment_names()).unwrap();
        let envr = &pol.environments["staging"];
        let sp = scope::render(spec_tool, envr, &validated).unwrap();
        let (kid, sec) = moto.broker_key();
        let broker = StsBroker::with_base_credentials(
            pol.session_duration,
            Credentials::new(kid, sec, None, None, "bench"),
        );
        let creds = broker
            .credentials(ScopeRequest {
                env: envr,
                role: Role::Agent,
                policy: &sp,
                tool,
                source_identity: "airlock-bench",
            })
            .await
            .unwrap();
        let http = aws::call::http_client();
        let mut direct = Vec::new();
        for i in 0..m + 10 {
            let t = Instant::now();
            let f = aws::call::fetch(
                &http,
                spec_tool.aws().unwrap(),
                spec_tool.output.items.as_deref(),
                envr,
                &validated,
                &creds,
            )
            .await
            .unwrap();
            std::hint::black_box(f);
            if i >= 10 {
                direct.push(ms(t.elapsed()));
            }
        }
        let (w50, w99, d50, d99) = (
            pct(&warm, 50.0),
            pct(&warm, 99.0),
            pct(&direct, 50.0),
            pct(&direct, 99.0),
        );
        let over99 = w99 - d99;
        eprintln!("{tool}: airlock p50 {w50:.2} p99 {w99:.2}; direct p50 {d50:.2} p99 {d99:.2}");
        rows.push(Row {
            what: format!("guard overhead, {tool}, warm"),
            figure: format!(
                "airlock p50 {w50:.2} / p99 {w99:.2} ms; direct p50 {d50:.2} / p99 {d99:.2} ms; overhead p50 {:.2} / p99 {over99:.2} ms",
                w50 - d50
            ),
            goal: format!("p99 overhead <= 0.5 ms: {}", if over99 <= 0.5 { "met" } else { "MISSED" }),
            how: format!("{m} sequential MCP calls on one server vs {m} in-process signed requests to the same moto, same run"),
        });
        rows.push(Row {
            what: format!("guard overhead, {tool}, cold"),
            figure: format!(
                "first call p50 {:.2} / max {:.2} ms (AssumeRole + call)",
                pct(&cold, 50.0),
                pct(&cold, 100.0)
            ),
            goal: "-".into(),
            how: format!("first call of {k} fresh servers"),
        });
    }

    // 3. STS economy: a realistic mix, concurrent callers, counted in the broker.
    {
        let (engine, broker) = support::moto_engine(&moto);
        let calls: Vec<(&str, Value)> = (0..1000)
            .map(|i| match i % 10 {
                0..=3 => (
                    "list_volumes",
                    json!({"environment": "staging", "states": ["available"]}),
                ),
                4 => ("list_volumes", json!({"environment": "prod"})),
                5..=7 => (
                    "read_logs",
                    json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 5}),
                ),
                8 => (
                    "read_logs",
                    json!({"environment": "staging", "log_group": "/app/staging/worker"}),
                ),
                _ => ("describe_access", json!({})),
            })
            .collect();
        let distinct = 4; // staging volumes, prod volumes, two log groups
        let calls = Arc::new(calls);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (e, c) = (engine.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let ctx = CallContext {
                    client_name: "bench".into(),
                    client_version: "1".into(),
                    session_id: "s".into(),
                };
                for (i, (tool, args)) in c.iter().enumerate() {
                    if i % 8 == w {
                        let a = e.call(tool, args.as_object().unwrap(), &ctx).await;
                        assert!(a.is_ok(), "{a:?}");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = broker.assume_role_calls();
        rows.push(Row {
            what: "STS economy: AssumeRole per 1,000 tool calls".into(),
            figure: format!("{n} AssumeRole for 1,000 calls ({distinct} distinct scopes, 8 concurrent callers, {:.0} calls/s)", 1000.0 / t.elapsed().as_secs_f64()),
            goal: format!("one per distinct scope: {}", if n == distinct { "met" } else { "MISSED" }),
            how: "in-process engine against moto; 40% staging volumes, 10% prod volumes, 40% two log groups, 10% describe_access".into(),
        });
    }
    drop(moto);

    // 4. Queue throughput on a SQLite file.
    {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("bench.db"))
                .await
                .unwrap(),
        );
        let queue = Queue::over(store.clone(), "bench.db".into());
        let req = |i: usize| NewRequest {
            call: Call {
                tool: "request_delete_volume".into(),
                environment: "staging".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
                resource_arn: format!("arn:aws:ec2:us-east-1:123456789012:volume/vol-{i:017x}"),
                arguments: json!({"environment": "staging", "volume_id": format!("vol-{i:017x}"), "reason": "bench"}),
            },
            resource_id: format!("vol-{i:017x}"),
            policy_hash: "p".into(),
            rule: "rule #1".into(),
            approvers_required: 1,
            cooldown_ms: 0,
            reason: "bench".into(),
            client_name: "bench".into(),
            client_version: "1".into(),
            session_id: "s".into(),
            resource_json: "{}".into(),
            ttl_ms: 3_600_000,
        };
        let single = if q { 1000 } else { 5000 };
        let t = Instant::now();
        for i in 0..single {
            queue.create(&req(i), "agent", 1).await.unwrap();
        }
        let single_rate = single as f64 / t.elapsed().as_secs_f64();
        // The floor under that figure: empty write transactions through the same pool.
        let t = Instant::now();
        for _ in 0..single {
            store.empty_write().await.unwrap();
        }
        let empty_rate = single as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..single {
            store.chain_head().await.unwrap();
            std::hint::black_box(i);
        }
        let select_rate = single as f64 / t.elapsed().as_secs_f64();
        let per = if q { 50 } else { 200 };
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..32 {
            let qq = queue.clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..per {
                    ids.push(
                        qq.create(&req(100_000 + w * 10_000 + i), "agent", 1)
                            .await
                            .unwrap()
                            .id,
                    );
                }
                ids
            }));
        }
        let mut ids = HashSet::new();
        for t in tasks {
            ids.extend(t.await.unwrap());
        }
        let conc_rate = (32 * per) as f64 / t.elapsed().as_secs_f64();
        let stored = queue.list(None).await.unwrap().len();
        let lost = single + 32 * per - stored;
        let dup = 32 * per - ids.len();
        rows.push(Row {
            what: "queue: requests created per second".into(),
            figure: format!("{single_rate:.0}/s single writer; {conc_rate:.0}/s with 32 concurrent writers; {lost} lost, {dup} duplicated"),
            goal: format!(">= 5,000/s single writer: {}", if single_rate >= 5000.0 { "met" } else { "MISSED" }),
            how: format!("{single} + {} requests into one WAL SQLite file, each a BEGIN IMMEDIATE transaction with its audit event", 32 * per),
        });
        rows.push(Row {
            what: "queue: where a create's time goes".into(),
            figure: format!("empty BEGIN IMMEDIATE + COMMIT: {empty_rate:.0}/s; one indexed SELECT: {select_rate:.0}/s"),
            goal: "-".into(),
            how: "same pool, same file: a create is one such transaction with 3 statements (request insert, audit head select, audit insert)".into(),
        });
        // Approve + claim.
        let pending: Vec<String> = queue
            .list(Some(airlock::queue::State::Pending))
            .await
            .unwrap()
            .into_iter()
            .take(if q { 200 } else { 1000 })
            .map(|r| r.id)
            .collect();
        let owner = ClaimOwner::this_process();
        let t = Instant::now();
        for id in &pending {
            let a = Approval {
                request_id: id.clone(),
                approver: "bench".into(),
                public_key: format!("k-{id}"),
                approved_at: 1,
                not_before: 1,
                signature: "s".into(),
            };
            queue
                .add_approval(&a, 1, 3_600_000, "cli", 2)
                .await
                .unwrap();
        }
        let mut claimed = 0;
        while let Some(r) = queue.claim(&owner, 60_000, 3).await.unwrap() {
            queue
                .finish(&r.id, &owner, airlock::queue::State::Executed, json!({}), 4)
                .await
                .unwrap();
            claimed += 1;
            if claimed == pending.len() {
                break;
            }
        }
        let rate = pending.len() as f64 / t.elapsed().as_secs_f64();
        rows.push(Row {
            what: "queue: approve + claim + finish".into(),
            figure: format!("{rate:.0} requests/s ({claimed} of {})", pending.len()),
            goal: "-".into(),
            how: "store operations only (signature checks are measured by the executor, not here)"
                .into(),
        });
    }

    // 5. Memory: peak RSS idle and under a burst of 1,000 calls.
    {
        let moto = Moto::start();
        let mut env = moto.airlock_env(home.path());
        env.retain(|(k, _)| k != "AIRLOCK_LOG");
        env.push(("AIRLOCK_LOG".into(), "warn".into()));
        let mut s = Stdio_::spawn(&airlock_cmd, &env);
        s.initialize().await;
        s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await;
        s.response().await;
        let idle = s.peak_rss_kb();
        for i in 0..1000 {
            let (tool, args) = match i % 4 {
                0 => ("list_volumes", json!({"environment": "staging"})),
                1 => (
                    "read_logs",
                    json!({"environment": "staging", "log_group": "/app/staging/api"}),
                ),
                _ => ("describe_access", json!({})),
            };
            s.send(&call(10 + i, tool, args)).await;
        }
        for _ in 0..1000 {
            s.response().await;
        }
        let burst = s.peak_rss_kb();
        s.close().await;
        rows.push(Row {
            what: "memory: peak RSS of airlock serve".into(),
            figure: format!("idle {:.1} MB; after a burst of 1,000 calls {:.1} MB", idle as f64 / 1024.0, burst as f64 / 1024.0),
            goal: format!(
                "<= 15 MB idle: {}; <= 40 MB burst: {}",
                if idle <= 15 * 1024 { "met" } else { "MISSED" },
                if burst <= 40 * 1024 { "met" } else { "MISSED" }
            ),
            how: "VmHWM from /proc after initialize + tools/list, then after 1,000 pipelined calls (half against moto)".into(),
        });
    }

    // 6. Redaction throughput on realistic log text.
    {
        let r = Redactor::global();
        let key = format!("AKIA{}", "J5".repeat(8));
        let mut lines = Vec::new();
        for i in 0..200_000 {
            lines.push(match i % 50 {
                0 => format!("2026-11-25T08:00:{:02}Z WARN retry with aws_access_key_id={key} region=us-east-1", i % 60),
                1 => format!("2026-11-25T08:00:{:02}Z INFO db connect postgres://app:pw{i}secret@db.internal:5432/app", i % 60),
                _ => format!("2026-11-25T08:00:{:02}Z INFO GET /api/v1/users/{i} 200 {}ms request_id=7f3a{i:08x} user=alice", i % 60, i % 90),
            });
        }
        let bytes: usize = lines.iter().map(|l| l.len()).sum();
        let t = Instant::now();
        let mut found = 0;
        for l in &lines {
            found += r.redact(l).count;
        }
        let mbs = bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
        rows.push(Row {
            what: "redaction throughput".into(),
            figure: format!(
                "{mbs:.0} MB/s ({:.1} MB, {found} secrets found)",
                bytes as f64 / 1e6
            ),
            goal: format!(
                ">= 200 MB/s: {}",
                if mbs >= 200.0 { "met" } else { "MISSED" }
            ),
            how: "per log line, as read_logs does; 4% of lines carry a secret".into(),
        });
    }

    // Report.
    let mut table =
        String::from("| what | figure | goal | how it was obtained |\n|---|---|---|---|\n");
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what, r.figure, r.goal, r.how
        ));
    }
    println!("\n{table}");
    let machine = machine();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let doc = format!(
        "# Benchmarks\n\nGenerated by `scripts/bench` (benches/suite.rs) on {date}, commit {commit}{q}.\n\nMachine: {machine}\n\n{table}\nMicro-benchmarks of the pure parts: `cargo bench --bench micro` (criterion; results in target/criterion).\n\n{notes}",
        date = airlock::timefmt::format_ms(airlock::timefmt::now_ms()),
        q = if q {
            " (quick mode: fewer repetitions)"
        } else {
            ""
        },
        notes = NOTES,
    );
    std::fs::write(repo().join("docs/benchmarks.md"), doc).unwrap();
    eprintln!("wrote docs/benchmarks.md");
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024 / 1024);
    format!("{cores} cores ({cpu}), {mem} GiB")
}

const NOTES: &str = "## Notes\n\n- Start-up is measured from spawn to the response line on stdout, with raw JSON-RPC over pipes, so no client library is in the timing. Peers are started offline exactly as `scripts/bench-peers` prints; the Python peer normally fetches a service index at start (one HTTPS round trip, up to 5 s) that is replaced by a local empty file here, so its real start-up is slower than measured.\n- Guard overhead compares a tool call through airlock (MCP over stdio: validation, policy decision, session-policy rendering, credential cache, signed request, projection, redaction) with the same signed request made in-process against the same moto server. Most of the difference is the stdio round trip and JSON.\n- Queue figures use one SQLite file in WAL mode; every create is a `BEGIN IMMEDIATE` transaction that also appends to the hash-chained audit log.\n- **The single-writer queue goal (5,000 requests/s) is met in some runs and missed in others** on this 2-core machine (3,350/s to 7,660/s across this session's runs; the table shows the latest). The row \"where a create's time goes\" is the profile: an *empty* `BEGIN IMMEDIATE` + `COMMIT` through sqlx's SQLite worker costs about as much as half a create, and a create is that transaction plus three statements (request insert, audit-head select, audit insert), so one writer lands near half the empty-transaction rate. The audit head must be read inside the write lock (other processes append too), and one request per transaction keeps a failure from holding others, so neither is batched away. Concurrent writers overlap the per-statement round trips. A request is created when an agent asks for a destructive change; thousands per second is far beyond any real queue.\n- Figures vary with machine load; rerun on an idle machine for stable numbers.\n";
