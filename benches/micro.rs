//! Micro-benchmarks of the pure parts, so regressions show: the policy decision, session-policy
//! rendering, argument validation and redaction.

use std::hint::black_box;

use airlock::catalogue::{Catalogue, args};
use airlock::config::source::SourceFile;
use airlock::policy::{CallFacts, Policy};
use airlock::redact::Redactor;
use airlock::scope;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

fn setup() -> (Policy, Catalogue) {
    let c = Catalogue::builtin().unwrap();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml")).unwrap();
    let p = Policy::parse(&SourceFile::new("policy.toml", text), Some(&c)).unwrap();
    (p, c)
}

fn bench(c: &mut Criterion) {
    let (policy, cat) = setup();
    let read_logs = cat.get("read_logs").unwrap().clone();
    let resources = vec!["/app/staging/api".to_string()];
    c.bench_function("policy_decide", |b| {
        b.iter(|| {
            black_box(policy.decide(&CallFacts {
                tool: "read_logs",
                risk: read_logs.risk,
                environment: "staging",
                resources: black_box(&resources),
            }))
        })
    });
    let input: Map<String, Value> =
        json!({"environment": "staging", "log_group": "/app/staging/api", "limit": 50})
            .as_object()
            .unwrap()
            .clone();
    let envs = policy.environment_names();
    c.bench_function("validate_arguments", |b| {
        b.iter(|| black_box(args::validate(&read_logs, black_box(&input), &envs).unwrap()))
    });
    let validated = args::validate(&read_logs, &input, &envs).unwrap();
    let env = &policy.environments["staging"];
    c.bench_function("render_session_policy", |b| {
        b.iter(|| black_box(scope::render(&read_logs, env, black_box(&validated)).unwrap()))
    });

    let r = Redactor::global();
    let clean =
        "2026-11-25T08:00:00Z INFO GET /api/v1/users 200 12ms user=alice request_id=7f3a9c2b";
    let key = format!("AKIA{}", "Q7".repeat(8));
    let dirty = format!("2026-11-25T08:00:00Z WARN loaded config aws_access_key_id={key} from env");
    let mut g = c.benchmark_group("redact");
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("clean_line", |b| {
        b.iter(|| black_box(r.redact(black_box(clean))))
    });
    g.throughput(Throughput::Bytes(dirty.len() as u64));
    g.bench_function("line_with_key", |b| {
        b.iter(|| black_box(r.redact(black_box(&dirty))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
