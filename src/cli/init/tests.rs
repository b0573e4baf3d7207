//! The plan from flags, and the policy text it gives.

use super::*;
use airlock::catalogue::{BackupKind, Risk};

fn plan(envs: &[&str]) -> Plan {
    let a = InitArgs {
        dir: ".".into(),
        non_interactive: true,
        envs: envs.iter().map(|s| s.to_string()).collect(),
        agent_role_name: "airlock-agent-{env}".into(),
        executor_role_name: "airlock-executor-{env}".into(),
        backup_region: Some("us-west-2".parse().unwrap()),
        log_export_buckets: vec![],
        principals: PrincipalArgs {
            broker_principal: None,
            operator_principal: None,
            require_mfa: false,
        },
        endpoint: None,
        db: Some("/var/lib/airlock/queue.db".into()),
        profile: Some("airlock-broker".into()),
        executor_profile: Some("airlock-operator".into()),
        protect_tags: vec![],
        out_dir: None,
        force: false,
        trust: None,
        print_client: None,
    };
    from_flags(&a).unwrap()
}

#[test]
fn the_starter_policy_is_valid_for_any_mix_of_environments() {
    let c = Catalogue::builtin().unwrap();
    for envs in [
        &[
            "staging:123456789012:us-east-1",
            "prod:123456789012:us-west-2",
        ][..],
        &["dev:123456789012:eu-west-1"][..],
        &["live:210987654321:eu-central-1:prod"][..],
        &["a:123456789012:us-west-2", "b:123456789012:us-east-1"][..],
    ] {
        let p = plan(envs);
        let text = policy_text(&p, &c, "airlock iam");
        let policy = Policy::parse(&SourceFile::new("policy.toml", text.clone()), Some(&c))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(policy.environments.len(), envs.len());
        assert_eq!(
            policy.db.as_deref(),
            Some(Path::new("/var/lib/airlock/queue.db"))
        );
        assert_eq!(
            policy
                .environments
                .values()
                .next()
                .unwrap()
                .profile
                .as_deref(),
            Some("airlock-broker")
        );
        iam::documents(&policy, &c, &p.principals).unwrap();
    }
}

#[test]
fn log_group_deletes_need_an_export_bucket() {
    let c = Catalogue::builtin().unwrap();
    let mut p = plan(&[
        "staging:123456789012:us-east-1",
        "dev:123456789012:us-east-1",
        "prod:123456789012:us-west-2",
    ]);
    p.envs
        .iter_mut()
        .find(|e| e.name == "staging")
        .unwrap()
        .log_export_bucket = Some("staging-log-exports".into());
    let text = policy_text(&p, &c, "airlock iam");
    let policy = Policy::parse(&SourceFile::new("policy.toml", text.clone()), Some(&c))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        policy.environments["staging"].log_export_bucket.as_deref(),
        Some("staging-log-exports")
    );
    let log_tools: Vec<_> = c
        .tools()
        .filter(|t| t.backup == Some(BackupKind::LogsExport))
        .collect();
    assert!(!log_tools.is_empty());
    for t in log_tools {
        assert!(iam::enabled(&policy, t, "staging"), "{}", t.name);
        assert!(!iam::enabled(&policy, t, "dev"), "{}", t.name);
        assert!(!iam::enabled(&policy, t, "prod"), "{}", t.name);
    }
    // Every other destructive tool is on outside production.
    for t in c
        .tools()
        .filter(|t| t.risk == Risk::Destructive && t.backup != Some(BackupKind::LogsExport))
    {
        assert!(iam::enabled(&policy, t, "dev"), "{}", t.name);
        assert!(!iam::enabled(&policy, t, "prod"), "{}", t.name);
    }
    assert!(
        text.contains("# Not enabled in dev: request_delete_log_group"),
        "{text}"
    );
}

#[test]
fn production_is_read_only_and_backups_leave_the_region() {
    let p = plan(&[
        "staging:123456789012:us-east-1",
        "prod:123456789012:us-west-2",
    ]);
    assert!(p.envs[1].prod && p.envs[1].executor_role.is_none());
    assert_eq!(p.envs[0].backup_region.as_deref(), Some("us-west-2"));
    let p = plan(&["west:123456789012:us-west-2"]);
    assert_eq!(p.envs[0].backup_region, None, "same region is no isolation");
}
