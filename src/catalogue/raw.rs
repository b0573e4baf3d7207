//! The tool file format as it is written: strict serde types (unknown keys are errors), with
//! spans kept on everything a later check may need to point at.
//!
//! The same types generate the JSON Schema editors validate tool files with
//! (`schemas/tool.schema.json`, see [`super::schema`]); the doc comments here are the
//! descriptions an editor shows. Spanned fields are described as the type they hold.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

/// An airlock tool file: one MCP tool, its arguments, the AWS call it makes and what it returns.
/// Reference: docs/tools.md; walk-through: docs/adding-a-tool.md.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "airlock tool file")]
pub struct RawTool {
    /// The MCP tool name: lowercase letters, digits and `_`, starting with a letter (at most 64).
    #[schemars(with = "String", regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    pub name: Spanned<String>,
    /// A human title for the tool.
    pub title: Option<String>,
    /// What the model reads to choose this tool: what it returns and when to use it.
    #[schemars(with = "String", length(min = 1))]
    pub description: Spanned<String>,
    /// The risk class: `read` tools run at once; `destructive` tools queue a request for a
    /// human approval.
    #[schemars(with = "Risk")]
    pub risk: Spanned<Risk>,
    /// What runs the tool: "aws" (the default: the [aws] call), or a built-in handler
    /// ("describe_access", "request_status", "request_cancel").
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub handler: Option<Spanned<String>>,
    /// The arguments, in order; they become the tool's input JSON Schema.
    #[serde(default)]
    #[schemars(with = "Vec<RawArgument>")]
    pub arguments: Vec<Spanned<RawArgument>>,
    /// Two timestamp arguments that bound a time range.
    #[schemars(with = "Option<RawTimeRange>")]
    pub time_range: Option<Spanned<RawTimeRange>>,
    /// The AWS call (for `handler = "aws"`).
    #[schemars(with = "Option<RawAws>")]
    pub aws: Option<Spanned<RawAws>>,
    /// What the answer is turned into: items, fields, caps.
    #[serde(default)]
    #[schemars(with = "Option<RawOutput>")]
    pub output: Option<Spanned<RawOutput>>,
    /// Destructive tools: how to look at the resource before queueing and before executing.
    #[schemars(with = "Option<RawDescribe>")]
    pub describe: Option<Spanned<RawDescribe>>,
    /// Destructive tools: the backup taken before the action runs.
    #[schemars(with = "Option<RawBackup>")]
    pub backup: Option<Spanned<RawBackup>>,
}

/// How a destructive tool looks at its resource: when the request is made and again before it
/// is executed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDescribe {
    /// A read tool of the catalogue that returns the resource as one item.
    #[schemars(with = "String")]
    pub tool: Spanned<String>,
    /// Its arguments, templated from this tool's (`"${volume_id}"`); `environment` is passed on.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub arguments: toml::Table,
    /// Output fields that must be the same at execution as when the request was made.
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// Error codes of the describe call that mean the resource does not exist.
    #[serde(default)]
    pub not_found: Vec<String>,
    /// What must hold of the resource for AWS to accept the action (checked when the request
    /// is made and again before the backup, so no backup is spent on a call AWS will refuse).
    #[serde(default)]
    #[schemars(with = "Vec<RawRequire>")]
    pub require: Vec<Spanned<RawRequire>>,
}

/// One precondition of a destructive action: an output field of the `[describe]` tool and
/// the value it must have.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequire {
    /// An output field of the `[describe]` tool (a top-level name, e.g. `state`).
    pub field: String,
    /// The value it must have (`"available"`, `false`).
    #[schemars(with = "serde_json::Value")]
    pub equals: toml::Value,
    /// Why the action cannot run when it has another value, completing "`ID` cannot be
    /// deleted now: ..." (`${value}` is the value found).
    pub refusal: String,
    /// What the agent (or the person) should do first.
    pub what_to_do: String,
}

/// The kind of backup taken before a destructive action.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// An EBS snapshot of the volume (copied to the environment's backup region when set).
    EbsSnapshot,
    /// A copy of the EBS snapshot itself, in the environment's backup region (or its own region
    /// when none is set and no isolated backup is required), before the snapshot is deleted.
    SnapshotCopy,
    /// A manual RDS DB snapshot of the instance, waited for and copied to the backup region
    /// when set, before the instance is deleted (the instance's final snapshot).
    RdsSnapshot,
    /// An export of the log group's events to the environment's `log_export_bucket` (S3
    /// CreateExportTask), waited for until it completes, before the group is deleted.
    LogsExport,
    /// No backup (the file must say why).
    None,
}

/// The backup taken before a destructive action runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    /// What kind of backup.
    pub kind: BackupKind,
    /// Required with `kind = "none"`.
    pub none_reason: Option<String>,
}

/// The risk class of a tool.
#[derive(
    Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Reads only: every IAM action must be a read verb.
    Read,
    /// Changes something reversible (only the built-in queue handlers today).
    Write,
    /// Destroys something: queued for a human approval, run by the executor after a backup.
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

/// The type of an argument.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArgKind {
    /// The name of an environment in policy.toml.
    Environment,
    /// A string (bounded by `max_length`, `pattern`, `enum`).
    String,
    /// An integer (bounded by `minimum`, `maximum`).
    Integer,
    /// true or false.
    Boolean,
    /// RFC 3339 or epoch milliseconds; normalised to epoch milliseconds.
    Timestamp,
    /// A list of strings (needs `max_items`; `pattern` applies to each item).
    StringList,
    /// An object of strings (needs `max_items`; see `key_pattern`, `value_pattern`).
    StringMap,
}

/// One argument of the tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgument {
    /// The argument's name, as the model passes it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The argument's type.
    #[serde(rename = "type")]
    #[schemars(with = "ArgKind")]
    pub kind: Spanned<ArgKind>,
    /// For the model: what to pass.
    pub description: String,
    /// The call is refused without it (unless there is a `default`).
    #[serde(default)]
    pub required: bool,
    /// For strings and list items: an anchored regular expression (`^...$`) the whole value
    /// must match. Required when the argument names a resource or reaches an ARN.
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    /// For strings: the longest value accepted (never more than 4096).
    pub max_length: Option<usize>,
    /// For strings and list items: the only values accepted.
    #[serde(rename = "enum")]
    pub choices: Option<Vec<String>>,
    /// For integers: the smallest value accepted.
    pub minimum: Option<i64>,
    /// For integers: the largest value accepted.
    pub maximum: Option<i64>,
    /// The value used when the call leaves the argument out.
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<toml::Value>,
    /// For lists and maps (required there): the most items or entries accepted.
    pub max_items: Option<usize>,
    /// For string maps: patterns for keys and values.
    #[schemars(with = "Option<String>")]
    pub key_pattern: Option<Spanned<String>>,
    /// For string maps: the pattern every value must match.
    #[schemars(with = "Option<String>")]
    pub value_pattern: Option<Spanned<String>>,
    /// This argument names the resource(s) the call acts on: checked against the protected
    /// list and matched by the `resources` globs of policy rules.
    #[serde(default)]
    pub resource: bool,
}

/// Two timestamp arguments that bound a time range.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeRange {
    /// The timestamp argument where the range starts (defaults to end - default_span).
    pub start: String,
    /// The timestamp argument where the range ends (defaults to now).
    pub end: String,
    /// The longest range accepted, e.g. "7d" (at most 366d).
    pub max_span: String,
    /// The range when the call gives no start, e.g. "1h".
    pub default_span: String,
}

/// The AWS wire protocol of the service.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// EC2's query dialect: lists as `Name.N`, XML answers with `item` lists.
    Ec2,
    /// The awsQuery protocol (IAM, RDS): lists as `Name.member.N`.
    Query,
    /// The awsJson protocol (Logs, ECS, DynamoDB): a JSON body and `X-Amz-Target`; the
    /// version (the `Content-Type`) is `json_version`.
    Json,
    /// The restXml protocol (S3): method and path from the tool file, the request template as
    /// the query string, XML answers. S3 is addressed path-style (`ENDPOINT/BUCKET`).
    RestXml,
}

/// The version of the awsJson protocol a service speaks: the `Content-Type` its requests carry
/// (`application/x-amz-json-1.0` or `-1.1`). The service model's `jsonVersion` says which:
/// DynamoDB speaks 1.0; Logs and ECS speak 1.1. A wrong version is refused by AWS.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, JsonSchema)]
pub enum JsonVersion {
    /// awsJson 1.0 (DynamoDB).
    #[serde(rename = "1.0")]
    V1_0,
    /// awsJson 1.1 (Logs, ECS, most JSON services): the default.
    #[default]
    #[serde(rename = "1.1")]
    V1_1,
}

impl JsonVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonVersion::V1_0 => "1.0",
            JsonVersion::V1_1 => "1.1",
        }
    }

    /// The `Content-Type` of a request in this version.
    pub fn content_type(self) -> &'static str {
        match self {
            JsonVersion::V1_0 => "application/x-amz-json-1.0",
            JsonVersion::V1_1 => "application/x-amz-json-1.1",
        }
    }
}

/// The AWS call and the session policy it runs under.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// The endpoint prefix and signing name, e.g. `ec2` or `logs`.
    #[schemars(with = "String")]
    pub service: Spanned<String>,
    /// The service's wire protocol.
    pub protocol: Protocol,
    /// The wire action, e.g. `DescribeVolumes` (for a tool with `calls`: a name for the whole).
    #[schemars(with = "String")]
    pub action: Spanned<String>,
    /// rest_xml: the HTTP method (default GET).
    pub method: Option<String>,
    /// rest_xml: the path template, e.g. "/${bucket}" (arguments in it need a `pattern`).
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Several requests answered as one document (e.g. a bucket's versioning, object lock and
    /// lifecycle): each call's answer is put under its `name`. Exclusive with `request`.
    #[serde(default)]
    #[schemars(with = "Vec<RawCall>")]
    pub calls: Vec<Spanned<RawCall>>,
    /// The API version (query protocols).
    pub version: Option<String>,
    /// The `X-Amz-Target` header (JSON protocol).
    pub target: Option<String>,
    /// json: the awsJson version the service speaks, "1.0" (DynamoDB) or "1.1" (the default:
    /// Logs, ECS); it is the request's `Content-Type`.
    #[schemars(with = "Option<JsonVersion>")]
    pub json_version: Option<Spanned<JsonVersion>>,
    /// The exact IAM actions the session policy grants ("service:Action", no wildcards).
    #[schemars(with = "Vec<String>")]
    pub iam_actions: Vec<Spanned<String>>,
    /// Resource ARN templates for the session policy, built from validated arguments:
    /// `arn:${partition}:SERVICE:${region}:${account}:...` (or `["*"]` with `wildcard_reason`,
    /// read tools only).
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Spanned<String>>,
    /// Required when `resources` is `["*"]`: why the action has no resource-level permission.
    pub wildcard_reason: Option<String>,
    /// The request template: `"${arg}"` placeholders, `$when` and `$each` (docs/tools.md).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub request: Option<Spanned<toml::Table>>,
    /// Follow the answer's next-page token, up to a cap.
    pub pagination: Option<RawPagination>,
    /// Error codes that mean the action already took effect (e.g. `InvalidVolume.NotFound`
    /// for a delete): a retry after a crash records success, not failure.
    #[serde(default)]
    pub already_done: Vec<String>,
}

/// One request of a tool with several (`[[aws.calls]]`); service, protocol and the session
/// policy are the tool's.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    /// The key this call's answer is put under in the document the output reads.
    pub name: String,
    /// The wire action of this request, e.g. `GetBucketVersioning`.
    pub action: String,
    /// rest_xml: the HTTP method (default GET).
    pub method: Option<String>,
    /// rest_xml: the path template, e.g. "/${bucket}".
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// json: the X-Amz-Target header (default: the tool's).
    pub target: Option<String>,
    /// The request template of this call (rest_xml: the query string).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub request: Option<Spanned<toml::Table>>,
    /// Error codes that mean "this is not configured" (e.g. NoSuchLifecycleConfiguration): the
    /// call's answer is then null, not an error.
    #[serde(default)]
    pub absent: Vec<String>,
}

/// Pagination: bounded, and the answer says when it stopped at the cap.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPagination {
    /// The request parameter that carries the token.
    pub request_token: String,
    /// Where the answer carries the next token (dot path).
    pub response_token: String,
    /// The most pages one call fetches (1..=100).
    #[schemars(range(min = 1, max = 100))]
    pub max_pages: u32,
}

/// What the tool returns.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Path (dot-separated) to the list of items in the answer.
    pub items: Option<String>,
    /// The fields of each item the agent sees (all of it when empty).
    #[serde(default)]
    #[schemars(with = "Vec<RawField>")]
    pub fields: Vec<Spanned<RawField>>,
    /// The most items returned (default 500, at most 10000); the answer says what was left out.
    #[schemars(range(min = 1, max = 10000))]
    pub max_items: Option<usize>,
    /// The most bytes of serialised items returned (default 65536, 1024..=1048576).
    #[schemars(range(min = 1024, max = 1048576))]
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
    /// Keep only items whose output `field` equals the value of `argument`, when the call
    /// gives it (e.g. an exact name looked up by prefix).
    #[serde(rename = "match")]
    pub only: Option<RawMatch>,
}

/// Keep only items whose output field equals an argument's value.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// An output field name.
    pub field: String,
    /// An argument of the tool; when the call leaves it out, every item is kept.
    pub argument: String,
}

/// Which end of the items survives the caps.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Keep the first items.
    #[default]
    First,
    /// Keep the last items (the newest, when sorted by time).
    Last,
}

/// Where an item's id and tags are, to mark it `protected` per the policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProtection {
    /// Path to the item's id.
    pub id: String,
    /// Path to the item's tags.
    pub tags: Option<String>,
}

/// One output field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// The name the agent sees.
    pub name: String,
    /// Dot path to the value in the item.
    pub path: String,
    /// How the value is converted.
    #[serde(rename = "type", default)]
    pub kind: FieldKind,
    /// Scrub secrets (keys, tokens, passwords) from the value before the agent sees it.
    #[serde(default)]
    pub redact: bool,
    /// Shown instead of null when the answer has no value here (e.g. "not configured").
    pub missing: Option<String>,
    /// For `list` fields: the fields of each element.
    #[serde(default)]
    pub fields: Vec<RawField>,
}

/// How an output value is converted.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// The value as a string.
    #[default]
    String,
    /// An integer.
    Integer,
    /// true or false.
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
