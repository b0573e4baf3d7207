//! policy.toml as it is written: strict serde types (unknown keys are errors) with spans, so
//! every later check can point at `policy.toml:LINE:COL`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: Spanned<u32>,
    #[serde(default)]
    pub settings: RawSettings,
    pub environments: BTreeMap<Spanned<String>, Spanned<RawEnvironment>>,
    #[serde(default)]
    pub protected: RawProtected,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Lifetime of the per-call credentials (at least 15m, STS's minimum).
    pub session_duration: Option<Spanned<String>>,
    /// A tools folder (relative to policy.toml) that replaces the built-in catalogue.
    pub tools_dir: Option<Spanned<String>>,
    /// How long a request waits for approval before it expires (default 24h).
    pub request_ttl: Option<Spanned<String>>,
    /// How long an approved request may wait for the executor after its cooldown (default 24h).
    pub execution_window: Option<Spanned<String>>,
    /// The queue file (relative to policy.toml); `--db` / `AIRLOCK_DB` take precedence.
    pub db: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    pub account: Spanned<String>,
    pub region: Spanned<String>,
    #[serde(default = "aws")]
    pub partition: String,
    pub agent_role: Spanned<String>,
    /// The broker's base credential: a named profile; absent means the standard AWS chain.
    pub profile: Option<Spanned<String>>,
    /// An endpoint for every service of this environment (e.g. a local AWS endpoint).
    pub endpoint: Option<Spanned<String>>,
    pub description: Option<String>,
    /// The role `airlock executor` assumes to run approved requests; the broker must not be
    /// able to assume it.
    pub executor_role: Option<Spanned<String>>,
    /// The executor's base credential: a named profile; absent means the standard AWS chain.
    pub executor_profile: Option<Spanned<String>>,
    /// Copy backups to this region (another failure domain) before deleting.
    pub backup_region: Option<Spanned<String>>,
    /// Refuse to delete unless the backup was copied out of the resource's region.
    #[serde(default)]
    pub require_isolated_backup: bool,
    /// The S3 bucket (in this environment's region) that log groups are exported to before
    /// they are deleted (backup kind `logs_export`).
    pub log_export_bucket: Option<Spanned<String>>,
}

fn aws() -> String {
    "aws".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtected {
    /// Resource ids (volume ids, log group names, ...) no agent call may name.
    #[serde(default)]
    pub ids: Vec<Spanned<String>>,
    /// `key=value` tags that mark a resource protected.
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Tool names, or `["*"]` for every tool.
    pub tools: Vec<Spanned<String>>,
    /// Environment names; absent or `["*"]` means every environment.
    pub environments: Option<Vec<Spanned<String>>>,
    /// Globs over the call's resource ids (`*` matches any run of characters).
    pub resources: Option<Vec<Spanned<String>>>,
    pub decision: Spanned<String>,
    /// Shown to the agent when this rule refuses or queues a call.
    pub reason: Option<String>,
    /// For `approve`: how many distinct approvers.
    pub approvers: Option<u32>,
    /// For `approve`: the wait between approval and execution.
    pub cooldown: Option<Spanned<String>>,
}
