//! What a new user hits (issue 11): each test names the item it guards and fails on the code
//! before its fix. The real binary, a real moto with IAM enforcement on, a pty where a person
//! would type.

use serde_json::json;

use crate::support::*;

/// Item 16: a resource name with `..`, `.` or doubled separators is refused before any
/// decision, so `/app/staging/web/../../prod/db` cannot pass a rule for `/app/staging/*`, and
/// no credential is minted for it.
#[tokio::test(flavor = "multi_thread")]
async fn non_canonical_resource_names_are_refused_before_any_decision() {
    let moto = Moto::start();
    let s = Server::start(Some(&moto), &demo_policy()).await;
    for name in [
        "/app/staging/web/../../prod/bookings",
        "/app/staging/./api",
        "/app/staging//api",
        "/app/staging/api/",
    ] {
        let a = s
            .call(
                "read_logs",
                json!({"environment": "staging", "log_group": name}),
            )
            .await;
        assert!(a.is_error, "{name}: {}", a.text);
        assert_eq!(a.body["error"], "invalid_argument", "{name}: {}", a.text);
        assert_eq!(a.body["field"], "log_group", "{name}");
        assert!(
            a.text.contains("not a canonical resource name"),
            "{}",
            a.text
        );
    }
    assert_eq!(s.assume_role_count(), 0, "{}", s.stderr());
    // The canonical name still works.
    let a = s
        .call(
            "read_logs",
            json!({"environment": "staging", "log_group": "/app/staging/api"}),
        )
        .await;
    assert!(!a.is_error, "{}", a.text);
}

/// A request in a fresh queue file, made through the library (no AWS needed).
async fn queued(db: &std::path::Path) -> String {
    use airlock::queue::{Call, NewRequest, Queue};
    let q = Queue::open(db).await.unwrap();
    let r = q
        .create(
            &NewRequest {
                call: Call {
                    tool: "request_delete_volume".into(),
                    environment: "staging".into(),
                    account: "123456789012".into(),
                    region: "us-east-1".into(),
                    resource_arn: "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0"
                        .into(),
                    arguments: json!({"volume_id": "vol-0123456789abcdef0"}),
                },
                resource_id: "vol-0123456789abcdef0".into(),
                policy_hash: "p".into(),
                rule: "rule #1".into(),
                approvers_required: 1,
                cooldown_ms: 0,
                reason: "test".into(),
                client_name: "test".into(),
                client_version: "1".into(),
                session_id: "s".into(),
                resource_json: "{}".into(),
                ttl_ms: 3_600_000,
            },
            "agent",
            airlock::timefmt::now_ms(),
        )
        .await
        .unwrap();
    q.close().await;
    r.id
}

/// Item 13: a bad `--state` is a usage error (exit 2, it was 1), an unknown request id is
/// refused (exit 4, as docs/cli.md now says), and a person's actions are audited under their
/// OS user's name even when `$USER` is unset (it was `cli:unknown`).
#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_and_the_audit_actor_are_what_the_docs_say() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let id = queued(&db).await;
    let dbs = db.to_str().unwrap();
    let r = airlock(&["requests", "list", "--db", dbs, "--state", "nope"], &[]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.contains("unknown state `nope`") && r.err.contains("pending"),
        "{}",
        r.err
    );
    let r = airlock(&["requests", "show", "--db", dbs, "r-000000000000"], &[]);
    assert_eq!(r.code, 4, "{}", r.err);
    // No USER, no LOGNAME: only PATH and HOME.
    let env = vec![("HOME".to_string(), dir.path().display().to_string())];
    let r = airlock(
        &["deny", "--db", dbs, &id, "--reason", "not this one"],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let r = airlock(&["audit", "show", "--db", dbs, "--json"], &env);
    let events: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    let denied = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "denied")
        .unwrap();
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(denied["actor"], format!("cli:{}", me.trim()), "{denied}");
}

/// Item 9: run outside the policy's folder, a command says where it looked and how to name the
/// policy (it said only "cannot read the policy: No such file or directory").
#[test]
fn a_missing_policy_names_the_flag_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["check"][..],
        &["requests", "list"],
        &["serve"],
        &["executor", "--once"],
    ] {
        let r = airlock_in(Some(dir.path()), args, &[]);
        assert_eq!(r.code, 3, "{args:?}: {}", r.err);
        assert!(
            r.err.contains("--policy PATH") && r.err.contains("AIRLOCK_POLICY"),
            "{args:?}: {}",
            r.err
        );
        assert!(
            r.err.contains(&dir.path().display().to_string()),
            "{}",
            r.err
        );
    }
}

/// Item 5: a new MCP session cannot withdraw a request another session made (and a human
/// approved); the session that made it can, and a person can with `airlock cancel`.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_requesting_session_may_cancel() {
    let rig = Rig::new(|t| t);
    let vol = rig.moto.volume("staging_api");
    let a = rig.agent().await;
    let id = rig.request_delete(&a, &vol).await;
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &vol, PASS, None);
    assert_eq!(code, 0, "{screen}");
    let b = rig.agent().await;
    let r = b
        .call(
            "cancel_request",
            json!({"request_id": id, "reason": "not mine"}),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert_eq!(r.body["error"], "refused", "{}", r.text);
    assert!(
        r.text.contains("another session") && r.text.contains("airlock cancel"),
        "{}",
        r.text
    );
    assert_eq!(rig.state(&id), "approved");
    assert!(!rig.audit_events(&id).contains(&"cancelled".to_string()));
    let r = a.call("cancel_request", json!({"request_id": id})).await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(rig.state(&id), "cancelled");
}

/// Item 12: policy errors a person can act on: a duplicate key names the key and where it was
/// first set; a wrong type says what belongs there in words; a misspelt region gets the nearest
/// real one; one bad account is one error (not three); errors come in line order.
#[test]
fn policy_errors_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo().join("policy.toml")).unwrap();
    let check = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let r = airlock(&["check", "--policy", p.to_str().unwrap()], &[]);
        assert_eq!(r.code, 3, "{name}: {}", r.err);
        r.err
    };
    let dup = check(
        "dup.toml",
        base.replacen(
            "cooldown = \"10m\"\n",
            "cooldown = \"10m\"\ncooldown = \"5m\"\n",
            1,
        ),
    );
    assert!(
        dup.contains("duplicate key `cooldown`: it is already set at line"),
        "{dup}"
    );
    let ty = check(
        "type.toml",
        base.replacen("approvers = 1\n", "approvers = \"two\"\n", 1),
    );
    assert!(
        ty.contains("expected a whole number such as 2 here, found the string \"two\""),
        "{ty}"
    );
    assert!(!ty.contains("u32"), "{ty}");
    let region = check(
        "region.toml",
        base.replacen("region = \"us-east-1\"", "region = \"us-wst-2\"", 1),
    );
    assert!(region.contains("did you mean \"us-west-2\""), "{region}");
    let account = check(
        "account.toml",
        base.replacen("account = \"123456789012\"", "account = \"12345\"", 1),
    );
    assert_eq!(account.matches("account.toml:").count(), 1, "{account}");
    assert!(
        !account.contains("agent_role must be"),
        "one root mistake: {account}"
    );
    // [protected] before [environments]: its error comes first, as in the file.
    let moved = base.replace("[protected]\n", "[protected_moved]\n");
    let moved = moved.replacen(
        "[environments.staging]",
        "[protected]\nids = []\ntags = [\"nokeyvalue\"]\n\n[environments.staging]",
        1,
    );
    let moved = moved.replace("[protected_moved]\n# airlock refuses any call naming these, and marks them in listings.\nids = []\ntags = [\"env=prod\"]\n", "");
    let moved = moved.replacen("account = \"123456789012\"", "account = \"12345\"", 1);
    let order = check("order.toml", moved);
    let lines: Vec<usize> = order
        .lines()
        .filter_map(|l| l.split(':').nth(1).and_then(|n| n.parse().ok()))
        .collect();
    assert!(lines.len() >= 2, "{order}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{order}");
}

/// A throwaway access key pair no AWS endpoint knows (a developer's own keys, in these tests).
fn stranger_keys() -> (String, String) {
    let hex = |u: uuid::Uuid| u.simple().to_string().to_uppercase();
    (
        format!("AKIA{}", &hex(uuid::Uuid::new_v4())[..16]),
        format!("{}{}", hex(uuid::Uuid::new_v4()), hex(uuid::Uuid::new_v4()))[..40].to_string(),
    )
}

/// A process environment whose only AWS configuration is the config and credentials files
/// written into `home` (no keys exported, no AWS_ENDPOINT_URL).
fn aws_files_env(home: &std::path::Path, config: &str, credentials: &str) -> Vec<(String, String)> {
    let (c, k) = (home.join("aws-config"), home.join("aws-credentials"));
    std::fs::write(&c, config).unwrap();
    std::fs::write(&k, credentials).unwrap();
    vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), c.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            k.display().to_string(),
        ),
        ("AIRLOCK_LOG".into(), "airlock=debug,warn".into()),
    ]
}

/// The repository's policy with every environment's `endpoint` set to `url` and staging's
/// broker credential the named `profile`.
fn policy_with_profile(dir: &std::path::Path, url: &str, profile: &str) -> std::path::PathBuf {
    let dir = dir.join(profile);
    std::fs::create_dir_all(&dir).unwrap();
    let text = policy_text_with_endpoint(url).replace(
        "\nagent_role = \"arn:aws:iam::123456789012:role/airlock-agent-staging\"",
        &format!(
            "\nagent_role = \"arn:aws:iam::123456789012:role/airlock-agent-staging\"\nprofile = \"{profile}\""
        ),
    );
    let p = dir.join("policy.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn static_profile(name: &str, key: &str, secret: &str) -> String {
    format!("[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
}

/// `airlock doctor --json`'s broker lines (control 2) for the environment variables `env`.
fn doctor_broker_lines(
    dir: &std::path::Path,
    policy: &std::path::Path,
    env: &[(String, String)],
) -> Vec<String> {
    let ws = dir.join("project");
    std::fs::create_dir_all(&ws).unwrap();
    let mut env = env.to_vec();
    env.push(("AIRLOCK_POLICY".into(), policy.display().to_string()));
    env.push((
        "AIRLOCK_DB".into(),
        dir.join("queue.db").display().to_string(),
    ));
    let r = airlock(&["doctor", "--dir", ws.to_str().unwrap(), "--json"], &env);
    let report: serde_json::Value =
        serde_json::from_str(&r.out).unwrap_or_else(|_| panic!("{}{}", r.out, r.err));
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["control"] == json!(2))
        .map(|l| {
            format!(
                "{}: {}",
                l["level"].as_str().unwrap(),
                l["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// Item 1: with `profile = "broker"`, keys exported in the shell that starts the MCP client
/// never become the broker: the profile is used and nothing else, and doctor says so. (Before
/// the fix the exported keys signed AssumeRole; moto does not know them, so the call failed.)
#[tokio::test(flavor = "multi_thread")]
async fn a_named_profile_beats_exported_keys() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (k, s) = moto.broker_key();
    let mut env = aws_files_env(dir.path(), "", &static_profile("broker", &k, &s));
    let (dev_key, dev_secret) = stranger_keys();
    env.push(("AWS_ACCESS_KEY_ID".into(), dev_key.clone()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), dev_secret));
    let policy = policy_with_profile(dir.path(), &moto.url, "broker");

    let server = Server::start_with(None, &policy, &env).await;
    let a = server
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert!(!a.is_error, "{}\n{}", a.text, server.stderr());
    assert!(!server.stderr().contains(&dev_key), "{}", server.stderr());

    let lines = doctor_broker_lines(dir.path(), &policy, &env);
    assert!(
        lines.iter().any(|l| l
            == "pass: staging: the broker's credential comes from profile `broker`: static keys in a profile"),
        "{lines:#?}"
    );
    // prod names no profile: the standard chain, which starts with the exported keys.
    assert!(
        lines.iter().any(|l| l.contains(
            "prod: the broker's credential comes from the standard AWS chain: keys from environment variables"
        )),
        "{lines:#?}"
    );
}

/// Item 2: a `role_arn` + `source_profile` profile makes its own AssumeRole at the
/// environment's `endpoint` (moto here), not at the real STS host. Nothing else in the process
/// environment names the endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn a_chained_profile_assumes_its_role_at_the_configured_endpoint() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let seed = &moto.seed;
    let config = format!(
        "[profile broker]\nrole_arn = {}\nsource_profile = hop-source\nregion = us-east-1\n",
        seed["hop_role"].as_str().unwrap()
    );
    let creds = static_profile(
        "hop-source",
        seed["hop_source_access_key_id"].as_str().unwrap(),
        seed["hop_source_secret_access_key"].as_str().unwrap(),
    );
    let env = aws_files_env(dir.path(), &config, &creds);
    let policy = policy_with_profile(dir.path(), &moto.url, "broker");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace("role/airlock-agent-staging", "role/airlock-agent-chained"),
    )
    .unwrap();

    let server = Server::start_with(None, &policy, &env).await;
    let a = server
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert!(!a.is_error, "{}\n{}", a.text, server.stderr());
    let lines = doctor_broker_lines(dir.path(), &policy, &env);
    assert!(
        lines.iter().any(|l| l
            == "pass: staging: the broker's credential comes from profile `broker`: a role the profile assumes (role_arn)"),
        "{lines:#?}"
    );
}

/// What every classified failure must not look like: a Rust Debug dump of the SDK's error.
fn assert_no_debug_dump(text: &str) {
    for dump in [
        "DispatchFailure",
        "ConnectorError",
        "Response {",
        "source:",
        "Some(",
        "SdkError",
    ] {
        assert!(!text.contains(dump), "`{dump}` in: {text}");
    }
}

/// Item 6: failures reach the agent classified, in one short sentence with what to do, never
/// as a Debug dump, and never as "retry later" when it is our configuration: a misspelt
/// profile, a credential_process that cannot run, a stopped endpoint, and STS refusing with a
/// code that is read from the XML body.
#[tokio::test(flavor = "multi_thread")]
async fn aws_failures_are_classified_for_the_agent() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (k, s) = moto.broker_key();
    let config = "[profile failing]\ncredential_process = sh -c 'echo token expired >&2; exit 3'\n";
    let env = aws_files_env(dir.path(), config, &static_profile("broker", &k, &s));

    // A profile that is not in the AWS config files: our configuration.
    let typo = policy_with_profile(dir.path(), &moto.url, "brokr");
    let server = Server::start_with(None, &typo, &env).await;
    let a = server
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert!(a.is_error);
    assert_eq!(a.body["error"], "aws_configuration", "{}", a.text);
    assert_no_debug_dump(&a.text);
    let advice = a.body["what_you_can_do"].as_str().unwrap();
    assert!(
        advice.contains("tell the person") && advice.contains("do not retry"),
        "{advice}"
    );
    assert!(!a.text.contains("retried later"), "{}", a.text);
    // The operator's log has the detail the agent is not given.
    assert!(
        server
            .stderr()
            .contains("there is no profile `brokr` in the AWS config files"),
        "{}",
        server.stderr()
    );
    drop(server);
    // ... and `airlock check` catches it before anything runs, at the line that names it.
    let r = airlock(&["check", "--policy", typo.to_str().unwrap()], &env);
    assert_eq!(r.code, 3, "{r:?}");
    let line = std::fs::read_to_string(&typo)
        .unwrap()
        .lines()
        .position(|l| l == "profile = \"brokr\"")
        .unwrap()
        + 1;
    assert!(
        r.err.contains(&format!(
            "policy.toml:{line}:11: environment `staging`: profile: there is no profile `brokr` in the AWS config files"
        )) && r.err.contains("they define: broker, failing"),
        "{r:?}"
    );

    // A credential_process that fails: the base credential.
    let failing = policy_with_profile(dir.path(), &moto.url, "failing");
    let server = Server::start_with(None, &failing, &env).await;
    let a = server
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert_eq!(a.body["error"], "aws_credentials", "{}", a.text);
    assert_no_debug_dump(&a.text);
    assert!(
        server.stderr().contains("credential_process failed"),
        "{}",
        server.stderr()
    );
    drop(server);

    // STS refuses the role: AccessDenied is read from the XML body, not left null.
    let dir2 = tempfile::tempdir().unwrap();
    let std_env = aws_files_env(dir2.path(), "", &static_profile("broker", &k, &s));
    let other = std::fs::read_to_string(&failing)
        .unwrap()
        .replace("\nprofile = \"failing\"", "\nprofile = \"broker\"")
        .replace("role/airlock-agent-staging", "role/someone-elses-role");
    let other_path = dir2.path().join("policy.toml");
    std::fs::write(&other_path, other).unwrap();
    let server = Server::start_with(None, &other_path, &std_env).await;
    let a = server
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert_eq!(a.body["error"], "aws_access_denied", "{}", a.text);
    assert_eq!(a.body["aws_code"], "AccessDenied", "{}", a.text);
    assert_no_debug_dump(&a.text);
    drop(server);

    // The endpoint stops answering: the network, said in one sentence.
    let good = policy_with_profile(dir.path(), &moto.url, "broker");
    let url = moto.url.clone();
    drop(moto);
    let server = Server::start_with(None, &good, &env).await;
    let a = server
        .call("list_volumes", json!({"environment": "staging"}))
        .await;
    assert_eq!(a.body["error"], "aws_unreachable", "{}", a.text);
    assert!(
        a.text.contains(&format!("cannot reach STS at {url}")),
        "{}",
        a.text
    );
    assert!(a.text.contains("connection refused"), "{}", a.text);
    assert_no_debug_dump(&a.text);
}

/// Item 3: an attached volume is refused when it is requested (nothing queued, told to detach
/// first); one attached again after approval is refused by the executor before any backup;
/// and when a step fails after the backup, the outcome names every backup made, which exist.
#[tokio::test(flavor = "multi_thread")]
async fn an_attached_volume_wastes_no_backup_and_a_late_failure_names_its_backups() {
    let rig = Rig::new(short_cooldown);
    let agent = rig.agent().await;
    let attached = rig.moto.volume("staging_db");
    let a = agent
        .call(
            "request_delete_volume",
            json!({"environment": "staging", "volume_id": attached, "reason": "replaced"}),
        )
        .await;
    assert!(a.is_error, "an attached volume was queued: {}", a.text);
    assert_eq!(a.body["error"], "not_ready", "{}", a.text);
    assert_eq!(a.body["field"], "state", "{}", a.text);
    assert_eq!(a.body["found"], "in-use", "{}", a.text);
    assert!(
        a.body["what_you_can_do"]
            .as_str()
            .is_some_and(|w| w.contains("detach")),
        "{}",
        a.text
    );
    let Run { code, out, err } = rig.cli(&["requests", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]", "nothing is queued");

    // Detached, it is queued; attached again behind airlock's back after approval, the
    // executor refuses it before taking any snapshot.
    assert_eq!(rig.aws(&["detach", &attached])["state"], "available");
    let id = rig.request_delete(&agent, &attached).await;
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &attached, PASS, None);
    assert_eq!(code, 0, "{screen}");
    assert_eq!(rig.aws(&["attach", &attached])["state"], "in-use");
    let v = rig.execute_when_due(&id);
    assert_eq!(v["state"], "failed", "{v}");
    assert_failed_because(&v, "no backup was taken");
    assert_failed_because(&v, "in-use");
    for region in ["us-east-1", "us-west-2"] {
        let snaps = rig.aws(&["snapshots-described", region, &id]);
        assert_eq!(snaps, json!([]), "a backup was spent in {region}");
    }
    assert!(rig.volume_exists(&attached));

    // A step that fails after the backup: the outcome names the snapshot and its copy.
    let web = rig.moto.volume("staging_web");
    let id = rig.request_delete(&agent, &web).await;
    let (code, screen) = rig.approve(&id, &key, &web, PASS, None);
    assert_eq!(code, 0, "{screen}");
    assert_eq!(rig.aws(&["deny-executor", "ec2:DeleteVolume"])["ok"], true);
    let v = rig.execute_when_due(&id);
    assert_eq!(v["state"], "failed", "{v}");
    assert!(rig.volume_exists(&web));
    let snap = v["outcome"]["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot named: {v}"));
    let copy = v["outcome"]["copy_snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no copy named: {v}"));
    assert_failed_because(&v, snap);
    assert_failed_because(&v, copy);
    assert_eq!(rig.aws(&["snapshot", "us-east-1", snap])["exists"], true);
    assert_eq!(rig.aws(&["snapshot", "us-west-2", copy])["exists"], true);
    // The person reading the queue sees them too.
    let Run { code, out, err } = rig.cli(&["requests", "show", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(snap) && out.contains(copy), "{out}");
}
