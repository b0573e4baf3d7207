//! The backup plans in words, for each built-in kind.
use super::*;
use crate::catalogue::Catalogue;

fn env() -> Environment {
    Environment::for_tests("us-east-1")
}

fn isolated() -> Environment {
    Environment {
        backup_region: Some("us-west-2".into()),
        require_isolated_backup: true,
        log_export_bucket: Some("team-log-exports".into()),
        ..env()
    }
}

fn tool(name: &str) -> ToolSpec {
    let c = Catalogue::builtin().unwrap();
    (**c.get(name).unwrap()).clone()
}

#[test]
fn each_built_in_kind_names_where_its_copy_is_kept() {
    let id = "r-0123456789ab";
    let cases = [
        (
            "request_delete_volume",
            "ebs_snapshot",
            "EBS snapshot in us-east-1, copied to us-west-2",
            "us-west-2",
        ),
        (
            "request_delete_snapshot",
            "snapshot_copy",
            "a copy of the snapshot in us-west-2",
            "us-west-2",
        ),
        (
            "request_delete_db_instance",
            "rds_snapshot",
            "final DB snapshot airlock-r-0123456789ab in us-east-1, copied to us-west-2",
            "us-west-2",
        ),
        (
            "request_delete_log_group",
            "logs_export",
            "every event exported to s3://team-log-exports/airlock/r-0123456789ab",
            "s3://team-log-exports/airlock/r-0123456789ab",
        ),
    ];
    for (name, kind, summary, kept) in cases {
        let p = plan(&tool(name), &isolated(), id).unwrap();
        assert_eq!(p.kind, kind, "{name}");
        assert_eq!(p.summary, summary, "{name}");
        assert_eq!(p.kept_in.as_deref(), Some(kept), "{name}");
        assert_eq!(p.refused, None, "{name}");
        let agent = p.for_agent();
        assert!(agent.contains(summary), "{agent}");
        assert!(agent.contains("nothing is deleted"), "{agent}");
        assert_eq!(p.for_person(), format!("{summary}, before the action"));
    }
    // Only the volume's backup is a snapshot of the resource; no other kind says so.
    let db = plan(&tool("request_delete_db_instance"), &isolated(), id).unwrap();
    assert!(!db.for_agent().contains("EBS"), "{}", db.for_agent());
}

#[test]
fn without_a_backup_region_the_copy_stays_in_the_region_and_says_so() {
    let p = plan(&tool("request_delete_volume"), &env(), "r-1").unwrap();
    assert_eq!(p.kept_in.as_deref(), Some("us-east-1"));
    assert!(p.summary.contains("no isolated copy"), "{}", p.summary);
    let p = plan(&tool("request_delete_snapshot"), &env(), "r-1").unwrap();
    assert_eq!(
        p.summary,
        "a copy of the snapshot in us-east-1 (same region: no isolated copy configured)"
    );
}

#[test]
fn a_log_group_without_an_export_bucket_is_refused_in_plain_words() {
    let p = plan(&tool("request_delete_log_group"), &env(), "r-1").unwrap();
    let why = p.refused.clone().unwrap();
    assert!(
        why.contains("`staging` names no log_export_bucket"),
        "{why}"
    );
    assert_eq!(p.kept_in, None);
    let agent = p.for_agent();
    assert!(agent.contains("will refuse"), "{agent}");
    assert!(agent.contains("delete nothing"), "{agent}");
    assert!(!agent.contains("Then the executor"), "{agent}");
    assert!(p.for_person().starts_with("none possible: "));
}

#[test]
fn kind_none_says_no_backup_and_gives_the_tools_reason() {
    let mut t = tool("request_delete_volume");
    t.backup = Some(BackupKind::None);
    t.backup_note = Some("a security group holds only its rules".into());
    let p = plan(&t, &isolated(), "r-1").unwrap();
    assert_eq!(p.kind, "none");
    assert_eq!(
        p.none_reason.as_deref(),
        Some("a security group holds only its rules")
    );
    assert_eq!(p.kept_in, None);
    let agent = p.for_agent();
    assert!(agent.contains("takes no backup"), "{agent}");
    assert!(
        agent.contains("because a security group holds only its rules"),
        "{agent}"
    );
    assert!(!agent.to_lowercase().contains("snapshot"), "{agent}");
    assert_eq!(
        p.for_person(),
        "none (the tool declares no backup: a security group holds only its rules)"
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json["none_reason"], "a security group holds only its rules",
        "{json}"
    );
}

#[test]
fn a_read_tool_has_no_plan() {
    assert_eq!(plan(&tool("list_volumes"), &isolated(), "r-1"), None);
}
