//! `airlock doctor` through the real binary: a fixture workspace with tokens of every kind
//! planted at test time (none committed), a clean workspace, and the broker and executor checks
//! against moto with IAM enforcement on.

use std::path::Path;

use crate::support::*;
use serde_json::{Value, json};

/// `n` characters from `alphabet`, from the operating system's generator (via UUID v4).
fn random(alphabet: &str, n: usize) -> String {
    let a: Vec<char> = alphabet.chars().collect();
    let mut out = String::new();
    while out.len() < n {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < n {
                out.push(a[*b as usize % a.len()]);
            }
        }
    }
    out
}

const B32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// AWS's own documentation examples: reported as examples, never as secrets.
fn docs_examples(root: &Path) {
    write(
        root,
        "docs/aws.md",
        "# Configure\n\n```\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n```\n",
    );
}

fn doctor(ws: &Path, extra_env: &[(String, String)], json_out: bool) -> Run {
    let home = ws.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let policy = policy_with(&home, |t| t);
    let mut env = vec![
        ("HOME".to_string(), home.display().to_string()),
        ("AIRLOCK_POLICY".into(), policy.display().to_string()),
        (
            "AIRLOCK_DB".into(),
            home.join("queue.db").display().to_string(),
        ),
    ];
    env.extend(extra_env.iter().cloned());
    let mut args = vec!["doctor", "--dir", ws.to_str().unwrap(), "--skip-aws"];
    if json_out {
        args.push("--json");
    }
    airlock(&args, &env)
}

/// `airlock doctor --json` on `ws` with no extra environment: its report, whatever the exit code.
fn doctor_json(ws: &Path) -> Value {
    let Run { code: _, out, err } = doctor(ws, &[], true);
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"))
}

fn control_lines(report: &Value, control: u64) -> Vec<Value> {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["control"] == json!(control))
        .cloned()
        .collect()
}

#[test]
fn doctor_finds_every_planted_token_and_prints_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("project");
    std::fs::create_dir(&ws).unwrap();
    let key_id = format!("AKIA{}", random(B32, 16));
    let secret = format!("{}/{}+9Q", random(ALNUM, 10), random(B64, 27));
    let session = format!("IQoJb3JpZ2luX2Vj{}", random(ALNUM, 180));
    let railway = uuid::Uuid::new_v4().to_string();
    let vercel = random(ALNUM, 24);
    let fly = format!("FlyV1 fm2_{}", random(ALNUM, 60));
    let render = format!("rnd_{}", random(ALNUM, 32));
    let github = format!("ghp_{}", random(ALNUM, 36));
    let kube_key = random(B64, 64);
    let pem_body = format!("{}\n{}", random(B64, 64), random(B64, 64));
    let env_token = format!("ghp_{}", random(ALNUM, 36));

    write(&ws, ".gitignore", ".env\n");
    write(
        &ws,
        ".env",
        &format!(
            "AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\nAWS_SESSION_TOKEN={session}\n"
        ),
    );
    write(
        &ws,
        "deploy/platforms.env",
        &format!(
            "# deploy tokens\nRAILWAY_TOKEN={railway}\nVERCEL_TOKEN={vercel}\nFLY_API_TOKEN=\"{fly}\"\nRENDER_API_KEY={render}\nGITHUB_TOKEN={github}\n"
        ),
    );
    write(
        &ws,
        "ops/kubeconfig.yaml",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1\nusers:\n- name: admin\n  user:\n    client-key-data: {kube_key}\ncontexts: []\n"
        ),
    );
    let d = "-".repeat(5);
    write(
        &ws,
        "keys/deploy_key",
        &format!("{d}BEGIN OPENSSH PRIVATE KEY{d}\n{pem_body}\n{d}END OPENSSH PRIVATE KEY{d}\n"),
    );
    // A dependency folder is not the project's: not read.
    write(
        &ws,
        "node_modules/pkg/.env",
        &format!("GITHUB_TOKEN=ghp_{}\n", random(ALNUM, 36)),
    );
    docs_examples(&ws);
    let env = [("GH_TOKEN".to_string(), env_token.clone())];

    let Run { code, out, err } = doctor(&ws, &env, true);
    assert_eq!(code, 4, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false);
    let lines = control_lines(&report, 1);
    let found: Vec<(String, u64, String, bool, bool, String)> = lines
        .iter()
        .filter(|l| !l["finding"].is_null())
        .map(|l| {
            let f = &l["finding"];
            (
                f["variable"]
                    .as_str()
                    .map(|v| format!("${v}"))
                    .unwrap_or_else(|| f["path"].as_str().unwrap().to_string()),
                f["line"].as_u64().unwrap(),
                f["kind"].as_str().unwrap().to_string(),
                f["git_ignored"].as_bool().unwrap(),
                f["example"].as_bool().unwrap(),
                l["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row = |p: &str, n: u64, k: &str, ignored: bool, example: bool, level: &str| {
        (
            p.to_string(),
            n,
            k.to_string(),
            ignored,
            example,
            level.to_string(),
        )
    };
    // A finding in a git-ignored file, in a tracked file, and an example in the docs.
    let ignored = |p: &str, n: u64, k: &str| row(p, n, k, true, false, "fail");
    let fail = |p: &str, n: u64, k: &str| row(p, n, k, false, false, "fail");
    let example = |p: &str, n: u64, k: &str| row(p, n, k, false, true, "pass");
    let mut expected = vec![
        ignored(".env", 1, "aws_access_key_id"),
        ignored(".env", 2, "aws_secret_access_key"),
        ignored(".env", 3, "aws_session_token"),
        fail("deploy/platforms.env", 2, "platform_token"),
        fail("deploy/platforms.env", 3, "platform_token"),
        fail("deploy/platforms.env", 4, "platform_token"),
        fail("deploy/platforms.env", 5, "platform_token"),
        fail("deploy/platforms.env", 6, "github_token"),
        example("docs/aws.md", 4, "aws_access_key_id"),
        example("docs/aws.md", 5, "aws_secret_access_key"),
        fail("keys/deploy_key", 1, "private_key"),
        fail("ops/kubeconfig.yaml", 10, "kubeconfig"),
        fail("$GH_TOKEN", 0, "github_token"),
    ];
    expected.sort();
    let mut got = found.clone();
    got.sort();
    assert_eq!(got, expected, "{out}");
    for l in &lines {
        if l["level"] == "fail" {
            assert!(l["fix"].as_str().unwrap().contains("remove it"), "{l}");
        }
    }

    // The human-readable form names path:line, and neither form prints any secret.
    let Run {
        code,
        out: text,
        err,
    } = doctor(&ws, &env, false);
    assert_eq!(code, 4, "{text}{err}");
    assert!(
        text.contains("fail  .env:2 (git-ignored): aws_secret_access_key"),
        "{text}"
    );
    assert!(
        text.contains("fail  ops/kubeconfig.yaml:10: kubeconfig"),
        "{text}"
    );
    assert!(
        text.contains("fail  environment variable GH_TOKEN: github_token"),
        "{text}"
    );
    assert!(text.contains("docs/aws.md:4: aws_access_key_id: a documentation example"));
    let pem_line = pem_body.lines().next().unwrap().to_string();
    for s in [
        &key_id, &secret, &session, &railway, &vercel, &fly, &render, &github, &kube_key,
        &pem_line, &env_token,
    ] {
        for (what, o) in [("json", &out), ("text", &text), ("stderr", &err)] {
            assert!(!o.contains(s.as_str()), "{what} printed a secret");
            // Nor a recognisable piece of one.
            assert!(
                !o.contains(&s[s.len() - 12..]),
                "{what} printed part of a secret"
            );
        }
    }
}

#[test]
fn a_clean_workspace_passes_the_credentials_check() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("project");
    write(&ws, ".gitignore", "target/\n");
    write(
        &ws,
        "src/main.rs",
        "fn main() {\n    let token = std::env::var(\"TOKEN\").unwrap_or_default();\n    println!(\"{}\", token.len());\n}\n",
    );
    write(&ws, "README.md", "# A project\n\nRun `cargo run`.\n");
    docs_examples(&ws);
    let report = doctor_json(&ws);
    let lines = control_lines(&report, 1);
    assert!(
        lines.iter().all(|l| l["level"] == "pass"),
        "{}",
        serde_json::to_string_pretty(&lines).unwrap()
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .starts_with("no cloud or platform credential in")),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["finding"]["example"] == true)
            .count(),
        2,
        "the documented AWS examples are reported as examples"
    );
}

/// A symbolic link in the workspace to a credentials file outside it: the agent reads the file
/// through the link, so doctor reports it, at the link's path and line, naming the target. A
/// link to a directory (here a loop back to the workspace) is not followed.
#[test]
fn a_symlink_to_a_credentials_file_outside_the_workspace_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("project");
    write(&ws, "README.md", "# A project\n");
    let outside = dir.path().join("dot-aws").join("credentials");
    let key_id = format!("AKIA{}", random(B32, 16));
    let secret = random(B64, 40);
    write(
        dir.path(),
        "dot-aws/credentials",
        &format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
    );
    std::os::unix::fs::symlink(&outside, ws.join("awscreds")).unwrap();
    std::os::unix::fs::symlink(&ws, ws.join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), ws.join("dangling")).unwrap();

    let Run { code, out, err } = doctor(&ws, &[], false);
    assert_eq!(code, 4, "{out}{err}");
    let target = std::fs::canonicalize(&outside).unwrap();
    let want = format!("awscreds:2 (via symlink to {})", target.display());
    assert!(out.contains(&want), "no `{want}` in:\n{out}{err}");
    assert!(out.contains("awscreds:3 (via symlink to"), "{out}");
    assert!(!out.contains(&key_id) && !out.contains(&secret), "{out}");
    assert!(!err.contains(&key_id) && !err.contains(&secret), "{err}");
    // The loop is not walked: nothing is reported under loop/.
    assert!(!out.contains("loop/"), "{out}");

    let report = doctor_json(&ws);
    let fails: Vec<Value> = control_lines(&report, 1)
        .into_iter()
        .filter(|l| l["level"] == "fail")
        .collect();
    assert_eq!(fails.len(), 2, "{fails:?}");
    for f in &fails {
        assert_eq!(f["finding"]["path"], "awscreds", "{f}");
        assert_eq!(
            f["finding"]["via_symlink"],
            json!(target.display().to_string()),
            "{f}"
        );
    }
}

/// The broker's keys in a shared credentials file (not in the environment), as a profile
/// would hold them; the rest of the environment points at moto.
fn moto_env(rig: &Rig, key: &str, secret: &str) -> Vec<(String, String)> {
    let creds = rig
        .dir
        .path()
        .join(format!("aws-credentials-{}", &key[..8]));
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), rig.dir.path().display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            creds.display().to_string(),
        ),
        (
            "AWS_CONFIG_FILE".into(),
            rig.dir.path().join("no-config").display().to_string(),
        ),
        ("AWS_ENDPOINT_URL".into(), rig.moto.url.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AIRLOCK_POLICY".into(), rig.policy.display().to_string()),
        ("AIRLOCK_TRUST".into(), rig.trust.display().to_string()),
        ("AIRLOCK_DB".into(), rig.db.display().to_string()),
    ]
}

/// `airlock doctor --json` on `ws` against moto with the broker key (`key`, `secret`): the exit
/// code, the report, and everything printed (stdout then stderr).
fn doctor_against_moto(rig: &Rig, ws: &Path, key: &str, secret: &str) -> (i32, Value, String) {
    let Run { code, out, err } = airlock(
        &["doctor", "--dir", ws.to_str().unwrap(), "--json"],
        &moto_env(rig, key, secret),
    );
    let report = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    (code, report, format!("{out}{err}"))
}

#[test]
fn doctor_asks_moto_what_the_broker_can_do() {
    let rig = Rig::new(|t| t);
    let ws = rig.dir.path().join("project");
    write(&ws, "README.md", "# nothing secret here\n");
    let (k, s) = rig.moto.broker_key();
    let (code, report, _) = doctor_against_moto(&rig, &ws, &k, &s);
    // The seeded log export bucket has no Object Lock: the only failing line.
    assert_eq!(
        code,
        4,
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let fails: Vec<&Value> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == "fail")
        .collect();
    assert_eq!(fails.len(), 1, "{fails:?}");
    assert_eq!(fails[0]["control"], 4);
    assert!(
        fails[0]["message"]
            .as_str()
            .unwrap()
            .contains("log export bucket airlock-staging-log-exports has no Object Lock"),
        "{}",
        fails[0]
    );
    assert!(fails[0]["fix"].as_str().unwrap().contains("COMPLIANCE"));
    let two = control_lines(&report, 2);
    assert_eq!(two.len(), 4, "{two:?}");
    assert!(two.iter().all(|l| l["level"] == "pass"), "{two:?}");
    let says = |what: &dyn Fn(&str) -> bool| {
        two.iter()
            .filter(|l| what(l["message"].as_str().unwrap()))
            .count()
    };
    // Per environment: where the broker's credential came from, and that it cannot delete.
    assert_eq!(
        says(&|m| {
            m.ends_with(
            "the broker's credential comes from the standard AWS chain, profile `default`: static keys in a profile"
        )
        }),
        2,
        "{two:?}"
    );
    assert_eq!(
        says(&|m| m.contains("user/airlock-broker) cannot delete")
            && m.contains("DryRun was refused")),
        2,
        "{two:?}"
    );
    let three = control_lines(&report, 3);
    assert!(
        three.iter().any(|l| l["level"] == "pass"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("the broker cannot assume the executor role")),
        "{three:?}"
    );
    let five = control_lines(&report, 5);
    assert_eq!(five[0]["level"], "pass", "{five:?}");
    assert!(
        five[0]["message"]
            .as_str()
            .unwrap()
            .contains("signed by owner")
    );

    // Exports to the seeded bucket with Object Lock in compliance mode: no line fails, and
    // doctor exits 0. (The policy changes, so its owner signs it again.)
    let text = std::fs::read_to_string(&rig.policy).unwrap();
    std::fs::write(
        &rig.policy,
        text.replace("airlock-staging-log-exports", "airlock-staging-backups"),
    )
    .unwrap();
    assert_eq!(rig.sign_policy(&rig.owner, None).0, 0);
    let (code, report, _) = doctor_against_moto(&rig, &ws, &k, &s);
    assert_eq!(
        code,
        0,
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert!(
        control_lines(&report, 4)
            .iter()
            .any(|l| l["level"] == "pass"
                && l["message"]
                    .as_str()
                    .unwrap()
                    .contains("airlock-staging-backups has Object Lock in COMPLIANCE mode")),
        "{report}"
    );

    // A credential that can delete (moto's all-powerful test user standing in for a broker
    // with too much power): control 2 fails and says how to fix it.
    let (ik, is) = (
        rig.moto.seed["inspector_access_key_id"].as_str().unwrap(),
        rig.moto.seed["inspector_secret_access_key"]
            .as_str()
            .unwrap(),
    );
    let (code, report, printed) = doctor_against_moto(&rig, &ws, ik, is);
    assert_eq!(code, 4, "{printed}");
    let two: Vec<Value> = control_lines(&report, 2)
        .into_iter()
        .filter(|l| {
            !l["message"]
                .as_str()
                .unwrap()
                .contains("credential comes from")
        })
        .collect();
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(
        two.iter().all(|l| l["level"] == "fail"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("may delete volumes")
            && l["fix"].as_str().unwrap().contains("sts:AssumeRole")),
        "{two:?}"
    );
    assert!(!printed.contains(is));
}

/// Log levels are capped, never raised: with the broker's key in a shared credentials file,
/// `aws_config` logs `loaded base credentials` (with the access key id) at info. Neither the
/// default level, nor `AIRLOCK_LOG=info`, nor trace may let it reach stderr (the MCP client's
/// log, the journal).
#[test]
fn the_access_key_id_never_reaches_stderr_at_any_log_level() {
    let rig = Rig::new(|t| t);
    let ws = rig.dir.path().join("project");
    write(&ws, "README.md", "# nothing secret here\n");
    let (k, s) = rig.moto.broker_key();
    for level in [None, Some("info"), Some("trace")] {
        let mut env = moto_env(&rig, &k, &s);
        if let Some(l) = level {
            env.push(("AIRLOCK_LOG".into(), l.into()));
        }
        let Run { code, out, err } = airlock(&["doctor", "--dir", ws.to_str().unwrap()], &env);
        // doctor really used the key (it asked moto what the broker can do).
        assert!(
            out.contains("user/airlock-broker) cannot delete"),
            "{level:?}: {code} {out}{err}"
        );
        assert!(
            !err.contains(&k),
            "{level:?}: stderr holds the key id:\n{err}"
        );
        assert!(!err.contains(&s), "{level:?}: stderr holds the secret");
        assert!(!out.contains(&k), "{level:?}: stdout holds the key id");
        assert!(!err.contains("loaded base credentials"), "{level:?}: {err}");
    }
}

/// A workspace that does not exist, or is a file, is a usage error (exit 2) that says so, not a
/// pass over "0 files read".
#[test]
fn a_missing_or_unreadable_dir_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x\n").unwrap();
    for ws in [&missing, &file] {
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let home = dir.path().join("home");
        let env = vec![
            ("HOME".to_string(), home.display().to_string()),
            (
                "AIRLOCK_POLICY".into(),
                policy_with(&home, |t| t).display().to_string(),
            ),
        ];
        let Run { code, out, err } = airlock(
            &["doctor", "--dir", ws.to_str().unwrap(), "--skip-aws"],
            &env,
        );
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains(&format!(
                "--dir {}: cannot read this directory",
                ws.display()
            )),
            "{err}"
        );
        assert!(!out.contains("files read"), "{out}");
    }
}
