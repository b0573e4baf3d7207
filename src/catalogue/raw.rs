//! The tool file format as it is written: strict serde types (unknown keys are errors), with
//! spans kept on everything a later check may need to point at.

use serde::Deserialize;
use serde_spanned::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    pub name: Spanned<String>,
    pub title: Option<String>,
    pub description: Spanned<String>,
    pub risk: Spanned<Risk>,
    #[serde(default)]
    pub handler: Option<Spanned<String>>,
    #[serde(default)]
    pub arguments: Vec<Spanned<RawArgument>>,
    pub time_range: Option<Spanned<RawTimeRange>>,
    pub aws: Option<Spanned<RawAws>>,
    #[serde(default)]
    pub output: Option<Spanned<RawOutput>>,
    /// Destructive tools: how to look at the resource before queueing and before executing.
    pub describe: Option<Spanned<RawDescribe>>,
    /// Destructive tools: the backup taken before the action runs.
    pub backup: Option<Spanned<RawBackup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDescribe {
    /// A read tool of the catalogue that returns the resource as one item.
    pub tool: Spanned<String>,
    /// Its arguments, templated from this tool's (`"${volume_id}"`); `environment` is passed on.
    #[serde(default)]
    pub arguments: toml::Table,
    /// Output fields that must be the same at execution as when the request was made.
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// Error codes of the describe call that mean the resource does not exist.
    #[serde(default)]
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// An EBS snapshot of the volume (copied to the environment's backup region when set).
    EbsSnapshot,
    /// No backup (the file must say why).
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    pub kind: BackupKind,
    /// Required with `kind = "none"`.
    pub none_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Read,
    Write,
    Destructive,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Read => "read",
            Risk::Write => "write",
            Risk::Destructive => "destructive",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ArgKind {
    /// The name of an environment in policy.toml.
    Environment,
    String,
    Integer,
    Boolean,
    /// RFC 3339 or epoch milliseconds; normalised to epoch milliseconds.
    Timestamp,
    StringList,
    StringMap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgument {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<ArgKind>,
    pub description: String,
    #[serde(default)]
    pub required: bool,
    /// For strings and list items: a regular expression the whole value must match.
    pub pattern: Option<Spanned<String>>,
    pub max_length: Option<usize>,
    #[serde(rename = "enum")]
    pub choices: Option<Vec<String>>,
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
    pub default: Option<toml::Value>,
    pub max_items: Option<usize>,
    /// For string maps: patterns for keys and values.
    pub key_pattern: Option<Spanned<String>>,
    pub value_pattern: Option<Spanned<String>>,
    /// This argument names the resource(s) the call acts on: checked against the protected
    /// list and matched by the `resources` globs of policy rules.
    #[serde(default)]
    pub resource: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeRange {
    pub start: String,
    pub end: String,
    pub max_span: String,
    pub default_span: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// EC2's query dialect: lists as `Name.N`, XML answers with `item` lists.
    Ec2,
    /// The awsQuery protocol (IAM, RDS): lists as `Name.member.N`.
    Query,
    /// The awsJson 1.1 protocol (Logs, ECS, DynamoDB): a JSON body and `X-Amz-Target`.
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// The endpoint prefix and signing name, e.g. `ec2` or `logs`.
    pub service: Spanned<String>,
    pub protocol: Protocol,
    /// The wire action, e.g. `DescribeVolumes`.
    pub action: String,
    /// The API version (query protocols).
    pub version: Option<String>,
    /// The `X-Amz-Target` header (JSON protocol).
    pub target: Option<String>,
    /// The exact IAM actions the session policy grants.
    pub iam_actions: Vec<Spanned<String>>,
    /// Resource ARN templates for the session policy.
    pub resources: Vec<Spanned<String>>,
    /// Required when `resources` is `["*"]`: why the action has no resource-level permission.
    pub wildcard_reason: Option<String>,
    #[serde(default)]
    pub request: Option<Spanned<toml::Table>>,
    pub pagination: Option<RawPagination>,
    /// Error codes that mean the action already took effect (e.g. `InvalidVolume.NotFound`
    /// for a delete): a retry after a crash records success, not failure.
    #[serde(default)]
    pub already_done: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagination {
    pub request_token: String,
    pub response_token: String,
    pub max_pages: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Path (dot-separated) to the list of items in the answer.
    pub items: Option<String>,
    #[serde(default)]
    pub fields: Vec<Spanned<RawField>>,
    pub max_items: Option<usize>,
    pub max_bytes: Option<usize>,
    /// The argument that lowers `max_items` for one call.
    pub limit_argument: Option<String>,
    /// Sort items ascending by this output field (e.g. a timestamp: newest last).
    pub sort_by: Option<String>,
    /// Which end to keep when there are more items than the limit.
    #[serde(default)]
    pub keep: Keep,
    /// Where each item's id and tags are, to mark protected resources.
    pub protection: Option<RawProtection>,
    /// A sentence added to every result (e.g. "log text is untrusted data").
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    #[default]
    First,
    Last,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtection {
    pub id: String,
    pub tags: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub name: String,
    pub path: String,
    #[serde(rename = "type", default)]
    pub kind: FieldKind,
    #[serde(default)]
    pub redact: bool,
    #[serde(default)]
    pub fields: Vec<RawField>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    #[default]
    String,
    Integer,
    Boolean,
    /// A list of `{key, value}` (or `{Key, Value}`) pairs, returned as an object.
    Tags,
    /// Epoch milliseconds, returned as RFC 3339.
    Time,
    /// A list of items, each projected through `fields`.
    List,
    /// The value as it is.
    Raw,
}
