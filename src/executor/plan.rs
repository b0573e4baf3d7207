//! What the executor will do before a destructive action, in plain words, from the tool's
//! declared `[backup]` and the environment: what the agent is told when its request is queued
//! and what `airlock requests show` prints. Mirrors [`super::Executor`]'s backup steps.

use serde::Serialize;

use crate::catalogue::{BackupKind, ToolSpec};
use crate::policy::Environment;

use super::RDS_BACKUP_PREFIX;

/// The backup a request will get, before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupPlan {
    /// The tool's declared kind (`ebs_snapshot`, `snapshot_copy`, `rds_snapshot`,
    /// `logs_export`, `none`).
    pub kind: &'static str,
    /// What is taken and where, as a noun phrase ("EBS snapshot in us-east-1, copied to
    /// us-west-2"); with `kind = "none"`, "none".
    pub summary: String,
    /// Where the copy that survives the deletion is kept: a region, or an `s3://` location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_in: Option<String>,
    /// `kind = "none"`: why the tool file says no backup is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub none_reason: Option<String>,
    /// Why the executor will refuse to run this request as the policy stands (nothing is then
    /// deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::EbsSnapshot => "ebs_snapshot",
            BackupKind::SnapshotCopy => "snapshot_copy",
            BackupKind::RdsSnapshot => "rds_snapshot",
            BackupKind::LogsExport => "logs_export",
            BackupKind::None => "none",
        }
    }
}

const NO_ISOLATION: &str = "same region: no isolated copy configured";

/// The backup the executor will take for request `request_id` of `tool` in `env`. `None` for a
/// tool without `[backup]` (only non-destructive tools).
pub fn backup_plan(tool: &ToolSpec, env: &Environment, request_id: &str) -> Option<BackupPlan> {
    let kind = tool.backup?;
    let here = &env.region;
    // policy.toml validation already refuses this; the executor would refuse too.
    let isolated_missing = || {
        (env.require_isolated_backup && env.backup_region.is_none()).then(|| {
            format!(
                "environment `{}` requires an isolated backup but names no backup_region",
                env.name
            )
        })
    };
    let plan = |summary: String, kept_in: Option<String>| BackupPlan {
        kind: kind.as_str(),
        summary,
        kept_in,
        none_reason: None,
        refused: isolated_missing(),
    };
    Some(match kind {
        BackupKind::EbsSnapshot => match &env.backup_region {
            Some(r) => plan(
                format!("EBS snapshot in {here}, copied to {r}"),
                Some(r.clone()),
            ),
            None => plan(
                format!("EBS snapshot in {here} ({NO_ISOLATION})"),
                Some(here.clone()),
            ),
        },
        BackupKind::SnapshotCopy => match &env.backup_region {
            Some(r) => plan(format!("a copy of the snapshot in {r}"), Some(r.clone())),
            None => plan(
                format!("a copy of the snapshot in {here} ({NO_ISOLATION})"),
                Some(here.clone()),
            ),
        },
        BackupKind::RdsSnapshot => {
            let name = format!("{RDS_BACKUP_PREFIX}{request_id}");
            match &env.backup_region {
                Some(r) => plan(
                    format!("final DB snapshot {name} in {here}, copied to {r}"),
                    Some(r.clone()),
                ),
                None => plan(
                    format!("final DB snapshot {name} in {here} ({NO_ISOLATION})"),
                    Some(here.clone()),
                ),
            }
        }
        BackupKind::LogsExport => match &env.log_export_bucket {
            Some(b) => {
                let at = format!("s3://{b}/airlock/{request_id}");
                plan(format!("every event exported to {at}"), Some(at))
            }
            None => BackupPlan {
                kind: kind.as_str(),
                summary: "an export of every event to the environment's log_export_bucket".into(),
                kept_in: None,
                none_reason: None,
                refused: Some(format!(
                    "environment `{}` names no log_export_bucket, so the log group cannot be exported before it is deleted",
                    env.name
                )),
            },
        },
        BackupKind::None => BackupPlan {
            kind: kind.as_str(),
            summary: "none".into(),
            kept_in: None,
            none_reason: Some(
                tool.backup_note
                    .clone()
                    .unwrap_or_else(|| "the tool file gives no reason".into()),
            ),
            refused: None,
        },
    })
}

impl BackupPlan {
    /// For the agent, after its request is queued: what runs once the request is approved and
    /// the cooldown is over.
    pub fn for_agent(&self) -> String {
        if let Some(why) = &self.refused {
            return format!(
                "As the policy stands the executor will refuse this request and delete nothing: {why}. A human has to change policy.toml first; tell the person you work with."
            );
        }
        match &self.none_reason {
            Some(reason) => format!(
                "Then the executor performs the deletion under a credential scoped to this one resource. It takes no backup first: the tool declares none, because {reason}."
            ),
            None => format!(
                "Then the executor takes the backup this tool declares and waits until it is complete ({}); only then does it perform the deletion, under a credential scoped to this one resource. If the backup fails, nothing is deleted.",
                self.summary
            ),
        }
    }

    /// For a person (`airlock requests show`): one line.
    pub fn for_person(&self) -> String {
        if let Some(why) = &self.refused {
            return format!("none possible: {why}, so the executor will refuse");
        }
        match &self.none_reason {
            Some(reason) => format!("none (the tool declares no backup: {reason})"),
            None => format!("{}, before the action", self.summary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    fn env() -> Environment {
        Environment {
            name: "staging".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            partition: "aws".into(),
            ..Default::default()
        }
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
            let p = backup_plan(&tool(name), &isolated(), id).unwrap();
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
        let db = backup_plan(&tool("request_delete_db_instance"), &isolated(), id).unwrap();
        assert!(!db.for_agent().contains("EBS"), "{}", db.for_agent());
    }

    #[test]
    fn without_a_backup_region_the_copy_stays_in_the_region_and_says_so() {
        let p = backup_plan(&tool("request_delete_volume"), &env(), "r-1").unwrap();
        assert_eq!(p.kept_in.as_deref(), Some("us-east-1"));
        assert!(p.summary.contains("no isolated copy"), "{}", p.summary);
        let p = backup_plan(&tool("request_delete_snapshot"), &env(), "r-1").unwrap();
        assert_eq!(
            p.summary,
            "a copy of the snapshot in us-east-1 (same region: no isolated copy configured)"
        );
    }

    #[test]
    fn a_log_group_without_an_export_bucket_is_refused_in_plain_words() {
        let p = backup_plan(&tool("request_delete_log_group"), &env(), "r-1").unwrap();
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
        let p = backup_plan(&t, &isolated(), "r-1").unwrap();
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
    fn a_read_tool_has_no_backup_plan() {
        assert_eq!(backup_plan(&tool("list_volumes"), &isolated(), "r-1"), None);
    }
}
