//! The catalogue: tools are data. Each file under `tools/` is parsed strictly
//! ([`raw`]), validated into a [`ToolSpec`] that the rest of the engine uses, and refused with
//! `file:LINE:COL:` errors when it would be unsafe (a wildcard action, a write verb in a read
//! tool, a resource ARN built from an unchecked argument, ...).
//!
//! The built-in tools are the files in the repository's `tools/`, embedded at build time, so
//! the engine has one path for every tool.

pub mod args;
pub mod doc;
pub mod raw;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value, json};

pub use raw::{ArgKind, BackupKind, FieldKind, JsonVersion, Keep, Protocol, Risk};

use crate::source::{SourceError, SourceErrors, SourceFile};
use crate::timefmt::parse_duration;

/// The tool files shipped in the binary (the repository's `tools/` folder).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "tools/describe_access.toml",
        include_str!("../../tools/describe_access.toml"),
    ),
    (
        "tools/list_volumes.toml",
        include_str!("../../tools/list_volumes.toml"),
    ),
    (
        "tools/list_snapshots.toml",
        include_str!("../../tools/list_snapshots.toml"),
    ),
    (
        "tools/list_log_groups.toml",
        include_str!("../../tools/list_log_groups.toml"),
    ),
    (
        "tools/list_dynamodb_tables.toml",
        include_str!("../../tools/list_dynamodb_tables.toml"),
    ),
    (
        "tools/list_ecs_clusters.toml",
        include_str!("../../tools/list_ecs_clusters.toml"),
    ),
    (
        "tools/list_db_instances.toml",
        include_str!("../../tools/list_db_instances.toml"),
    ),
    (
        "tools/list_db_snapshots.toml",
        include_str!("../../tools/list_db_snapshots.toml"),
    ),
    (
        "tools/list_buckets.toml",
        include_str!("../../tools/list_buckets.toml"),
    ),
    (
        "tools/get_bucket_protection.toml",
        include_str!("../../tools/get_bucket_protection.toml"),
    ),
    (
        "tools/read_logs.toml",
        include_str!("../../tools/read_logs.toml"),
    ),
    (
        "tools/request_delete_volume.toml",
        include_str!("../../tools/request_delete_volume.toml"),
    ),
    (
        "tools/request_delete_snapshot.toml",
        include_str!("../../tools/request_delete_snapshot.toml"),
    ),
    (
        "tools/request_delete_db_instance.toml",
        include_str!("../../tools/request_delete_db_instance.toml"),
    ),
    (
        "tools/request_delete_log_group.toml",
        include_str!("../../tools/request_delete_log_group.toml"),
    ),
    (
        "tools/get_request.toml",
        include_str!("../../tools/get_request.toml"),
    ),
    (
        "tools/cancel_request.toml",
        include_str!("../../tools/cancel_request.toml"),
    ),
];

/// What a tool does when called.
#[derive(Debug, Clone)]
pub enum Handler {
    /// A signed AWS request.
    Aws(Box<AwsSpec>),
    /// Explain this agent's access (no AWS call).
    DescribeAccess,
    /// The state of a queued request.
    RequestStatus,
    /// Cancel a queued request.
    RequestCancel,
}

#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub risk: Risk,
    pub arguments: Vec<ArgSpec>,
    pub time_range: Option<TimeRange>,
    pub handler: Handler,
    pub output: OutputSpec,
    /// The JSON Schema the model sees for the arguments.
    pub input_schema: Arc<Map<String, Value>>,
    pub path: PathBuf,
    /// Destructive tools: how the resource is looked at, and the backup before the action.
    pub describe: Option<DescribeSpec>,
    pub backup: Option<BackupKind>,
    /// Why a `kind = "none"` backup is enough (the file's `none_reason`).
    pub backup_note: Option<String>,
}

impl ToolSpec {
    pub fn aws(&self) -> Option<&AwsSpec> {
        match &self.handler {
            Handler::Aws(a) => Some(a),
            _ => None,
        }
    }

    pub fn argument(&self, name: &str) -> Option<&ArgSpec> {
        self.arguments.iter().find(|a| a.name == name)
    }

    /// A destructive tool's one resource argument.
    pub fn resource_argument(&self) -> Option<&ArgSpec> {
        self.resource_arguments().next()
    }

    /// The arguments that name the resources a call acts on.
    pub fn resource_arguments(&self) -> impl Iterator<Item = &ArgSpec> {
        self.arguments.iter().filter(|a| a.resource)
    }
}

#[derive(Debug, Clone)]
pub struct ArgSpec {
    pub name: String,
    pub kind: ArgKind,
    pub description: String,
    pub required: bool,
    pub pattern: Option<Regex>,
    pub max_length: Option<usize>,
    pub choices: Option<Vec<String>>,
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
    pub default: Option<Value>,
    pub max_items: Option<usize>,
    pub key_pattern: Option<Regex>,
    pub value_pattern: Option<Regex>,
    pub resource: bool,
}

#[derive(Debug, Clone)]
pub struct DescribeSpec {
    pub tool: String,
    pub arguments: Map<String, Value>,
    pub unchanged: Vec<String>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TimeRange {
    pub start: String,
    pub end: String,
    pub max_span: Duration,
    pub default_span: Duration,
}

#[derive(Debug, Clone)]
pub struct AwsSpec {
    pub service: String,
    pub protocol: Protocol,
    pub action: String,
    pub version: Option<String>,
    pub target: Option<String>,
    /// json: the awsJson version (the `Content-Type`).
    pub json_version: JsonVersion,
    pub iam_actions: Vec<String>,
    pub resources: Vec<String>,
    pub wildcard_reason: Option<String>,
    pub request: Map<String, Value>,
    pub pagination: Option<Pagination>,
    pub already_done: Vec<String>,
    /// restXml: the HTTP method and path template.
    pub method: String,
    pub path: Option<String>,
    /// Several requests answered as one document, each under its name.
    pub calls: Vec<CallSpec>,
}

/// One request of a tool with several.
#[derive(Debug, Clone)]
pub struct CallSpec {
    pub name: String,
    pub action: String,
    pub method: String,
    pub path: Option<String>,
    pub target: Option<String>,
    pub request: Map<String, Value>,
    /// Error codes that mean "not configured": the call's answer is null.
    pub absent: Vec<String>,
}

impl AwsSpec {
    /// A spec for an executor step (no arguments, no pagination, one action).
    pub fn step(service: &str, protocol: Protocol, action: &str, version: &str) -> AwsSpec {
        AwsSpec {
            service: service.into(),
            protocol,
            action: action.into(),
            version: Some(version.into()),
            target: None,
            json_version: JsonVersion::default(),
            iam_actions: Vec::new(),
            resources: Vec::new(),
            wildcard_reason: None,
            request: Map::new(),
            pagination: None,
            already_done: Vec::new(),
            method: "POST".into(),
            path: None,
            calls: Vec::new(),
        }
    }

    /// The spec of one of `calls`, as a single request.
    pub fn for_call(&self, c: &CallSpec) -> AwsSpec {
        AwsSpec {
            action: c.action.clone(),
            method: c.method.clone(),
            path: c.path.clone(),
            target: c.target.clone().or_else(|| self.target.clone()),
            request: c.request.clone(),
            pagination: None,
            calls: Vec::new(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pagination {
    pub request_token: String,
    pub response_token: String,
    pub max_pages: u32,
}

#[derive(Debug, Clone, Default)]
pub struct OutputSpec {
    pub items: Option<String>,
    pub fields: Vec<FieldSpec>,
    pub max_items: usize,
    pub max_bytes: usize,
    pub limit_argument: Option<String>,
    pub sort_by: Option<String>,
    pub keep: Keep,
    pub protection: Option<ProtectionSpec>,
    pub note: Option<String>,
    /// Keep only items whose output field equals an argument's value (when it is given).
    pub only: Option<OnlyMatching>,
}

#[derive(Debug, Clone)]
pub struct OnlyMatching {
    pub field: String,
    pub argument: String,
}

#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub path: String,
    pub kind: FieldKind,
    pub redact: bool,
    /// Shown instead of null.
    pub missing: Option<String>,
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone)]
pub struct ProtectionSpec {
    pub id: String,
    pub tags: Option<String>,
}

/// Every tool, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    tools: BTreeMap<String, Arc<ToolSpec>>,
    /// Hex SHA-256 of each tool's file bytes, by tool name (what a policy signature covers).
    file_sha256: BTreeMap<String, String>,
    /// Whether these are the embedded built-in tools (no tools folder on disk).
    builtin: bool,
}

/// The verbs a read tool's IAM actions may start with.
const READ_VERBS: &[&str] = &[
    "Describe",
    "List",
    "Get",
    "Filter",
    "Lookup",
    "Search",
    "Head",
    "BatchGet",
    "Query",
    "Scan",
    "Select",
    "Validate",
    "StartQuery",
    "GetQueryResults",
    "StopQuery",
];

/// Placeholders a resource template may use besides the tool's own arguments.
const ENV_PLACEHOLDERS: &[&str] = &["partition", "region", "account"];

const DEFAULT_MAX_ITEMS: usize = 500;
const DEFAULT_MAX_BYTES: usize = 64 * 1024;
/// Hard ceilings a tool file cannot raise.
const MAX_ITEMS_CEILING: usize = 10_000;
const MAX_BYTES_CEILING: usize = 1024 * 1024;
const MAX_PAGES_CEILING: u32 = 100;
/// The longest time range a tool may allow.
const MAX_TIME_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);

impl Catalogue {
    /// The built-in tools.
    pub fn builtin() -> Result<Self, SourceErrors> {
        let files = BUILTIN
            .iter()
            .map(|(p, t)| SourceFile::new(p, *t))
            .collect::<Vec<_>>();
        let mut c = Self::from_files(files)?;
        c.builtin = true;
        Ok(c)
    }

    /// Every `*.toml` file in `dir` (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<Self, SourceErrors> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            SourceErrors::from(SourceError {
                path: dir.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the tools folder: {e}"),
            })
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for p in paths {
            match std::fs::read_to_string(&p) {
                Ok(t) => files.push(SourceFile::new(&p, t)),
                Err(e) => errors.push(SourceError {
                    path: p.clone(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read the tool file: {e}"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(SourceErrors(errors));
        }
        Self::from_files(files)
    }

    pub fn from_files(files: Vec<SourceFile>) -> Result<Self, SourceErrors> {
        Self::from_files_with(files, None)
    }

    /// Validate `files` as a set; a `[describe]` tool not among them may come from `context`
    /// (`airlock tools check FILE` checks a new file against the configured catalogue).
    pub fn from_files_with(
        files: Vec<SourceFile>,
        context: Option<&Catalogue>,
    ) -> Result<Self, SourceErrors> {
        let mut tools = BTreeMap::new();
        let mut file_sha256 = BTreeMap::new();
        let mut errors = Vec::new();
        for f in &files {
            match parse_tool(f) {
                Ok(t) => {
                    if let Some(prev) = tools.get(&t.name) {
                        let prev: &Arc<ToolSpec> = prev;
                        errors.push(f.error(
                            None,
                            format!(
                                "a tool named `{}` is already defined in {}; tool names must be unique",
                                t.name,
                                prev.path.display()
                            ),
                        ));
                    } else {
                        use sha2::Digest;
                        let digest = sha2::Sha256::digest(f.text.as_bytes());
                        file_sha256.insert(t.name.clone(), hex::encode(digest));
                        tools.insert(t.name.clone(), Arc::new(t));
                    }
                }
                Err(mut e) => errors.append(&mut e.0),
            }
        }
        for f in &files {
            let Some(t) = tools.values().find(|t| t.path == f.path) else {
                continue;
            };
            if let Some(d) = &t.describe {
                match tools
                    .get(&d.tool)
                    .or_else(|| context.and_then(|c| c.get(&d.tool)))
                {
                    Some(dt) if dt.risk == Risk::Read && dt.aws().is_some() => {}
                    _ => errors.push(f.error(
                        None,
                        format!("[describe] tool `{}` must be a read tool of the catalogue that calls AWS", d.tool),
                    )),
                }
            }
        }
        if errors.is_empty() {
            Ok(Catalogue {
                tools,
                file_sha256,
                builtin: false,
            })
        } else {
            Err(SourceErrors(errors))
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ToolSpec>> {
        self.tools.get(name)
    }

    pub fn tools(&self) -> impl Iterator<Item = &Arc<ToolSpec>> {
        self.tools.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Hex SHA-256 of the bytes of the file that defined tool `name`.
    pub fn file_sha256(&self, name: &str) -> Option<&str> {
        self.file_sha256.get(name).map(String::as_str)
    }

    /// True for the embedded built-in tools (their files are compiled into the binary).
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
}

/// Parse and validate one tool file.
pub fn parse_tool(f: &SourceFile) -> Result<ToolSpec, SourceErrors> {
    let raw: raw::RawTool = f.parse_toml()?;
    let mut errs: Vec<SourceError> = Vec::new();
    let name = raw.name.get_ref().clone();
    if !valid_tool_name(&name) {
        errs.push(f.error(
            Some(raw.name.span()),
            format!("tool name `{name}` must be lowercase letters, digits and `_`, starting with a letter (at most 64)"),
        ));
    }
    if raw.description.get_ref().trim().is_empty() {
        errs.push(f.error(
            Some(raw.description.span()),
            "the description is what the model reads to choose this tool; it must not be empty",
        ));
    }
    let risk = *raw.risk.get_ref();

    // Arguments.
    let mut arguments = Vec::new();
    let mut seen = BTreeSet::new();
    for a in &raw.arguments {
        let span = a.span();
        let a = a.get_ref();
        let an = a.name.get_ref();
        if !seen.insert(an.clone()) {
            errs.push(f.error(
                Some(a.name.span()),
                format!("argument `{an}` is declared twice"),
            ));
        }
        let compile = |p: &Option<serde_spanned::Spanned<String>>, errs: &mut Vec<SourceError>| {
            p.as_ref().and_then(|p| match anchored(p.get_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    errs.push(f.error(Some(p.span()), e));
                    None
                }
            })
        };
        let pattern = compile(&a.pattern, &mut errs);
        let key_pattern = compile(&a.key_pattern, &mut errs);
        let value_pattern = compile(&a.value_pattern, &mut errs);
        let kind = *a.kind.get_ref();
        let default = match &a.default {
            None => None,
            Some(v) => match serde_json::to_value(v) {
                Ok(v) => Some(v),
                Err(e) => {
                    errs.push(f.error(Some(span.clone()), format!("bad default: {e}")));
                    None
                }
            },
        };
        if a.resource && !matches!(kind, ArgKind::String | ArgKind::StringList) {
            errs.push(f.error(
                Some(a.kind.span()),
                format!("argument `{an}` is marked `resource = true`, so it must be a string or string_list"),
            ));
        }
        if a.resource && pattern.is_none() {
            errs.push(f.error(
                Some(span.clone()),
                format!("argument `{an}` names a resource, so it needs a `pattern` (e.g. \"^vol-[0-9a-f]{{8,17}}$\") that excludes wildcards"),
            ));
        }
        if matches!(kind, ArgKind::StringList | ArgKind::StringMap) && a.max_items.is_none() {
            errs.push(f.error(
                Some(span.clone()),
                format!("argument `{an}` is a list or map, so it needs `max_items`"),
            ));
        }
        arguments.push(ArgSpec {
            name: an.clone(),
            kind,
            description: a.description.clone(),
            required: a.required,
            pattern,
            max_length: a.max_length,
            choices: a.choices.clone(),
            minimum: a.minimum,
            maximum: a.maximum,
            default,
            max_items: a.max_items,
            key_pattern,
            value_pattern,
            resource: a.resource,
        });
    }

    // Time range.
    let time_range = raw.time_range.as_ref().and_then(|tr| {
        let span = tr.span();
        let t = tr.get_ref();
        let mut ok = true;
        for n in [&t.start, &t.end] {
            if !arguments
                .iter()
                .any(|a| &a.name == n && a.kind == ArgKind::Timestamp)
            {
                errs.push(f.error(
                    Some(span.clone()),
                    format!("time_range names `{n}`, which is not a timestamp argument"),
                ));
                ok = false;
            }
        }
        let max_span = parse_duration(&t.max_span)
            .map_err(|e| errs.push(f.error(Some(span.clone()), e)))
            .ok();
        let default_span = parse_duration(&t.default_span)
            .map_err(|e| errs.push(f.error(Some(span.clone()), e)))
            .ok();
        if let (Some(max), Some(default)) = (max_span, default_span)
            && (max > MAX_TIME_SPAN || default > max)
        {
            errs.push(f.error(
                Some(span.clone()),
                "time_range spans must satisfy default_span <= max_span <= 366d",
            ));
            ok = false;
        }
        match (ok, max_span, default_span) {
            (true, Some(max_span), Some(default_span)) => Some(TimeRange {
                start: t.start.clone(),
                end: t.end.clone(),
                max_span,
                default_span,
            }),
            _ => None,
        }
    });

    let arg_names: BTreeSet<&str> = arguments.iter().map(|a| a.name.as_str()).collect();

    // Handler.
    let handler_name = raw
        .handler
        .as_ref()
        .map(|h| h.get_ref().as_str())
        .unwrap_or("aws");
    let handler = match handler_name {
        "aws" => match &raw.aws {
            None => {
                errs.push(f.error(None, "an `aws` tool needs an [aws] table (service, protocol, action, iam_actions, resources)"));
                None
            }
            Some(aws) => {
                validate_aws(f, aws, risk, &arguments, &mut errs).map(|a| Handler::Aws(Box::new(a)))
            }
        },
        local @ ("describe_access" | "request_status" | "request_cancel") => {
            if let Some(aws) = &raw.aws {
                errs.push(f.error(
                    Some(aws.span()),
                    format!("the {local} handler makes no AWS call; remove [aws]"),
                ));
            }
            Some(match local {
                "describe_access" => Handler::DescribeAccess,
                "request_status" => Handler::RequestStatus,
                _ => Handler::RequestCancel,
            })
        }
        other => {
            let span = raw.handler.as_ref().map(|h| h.span());
            errs.push(f.error(
                span,
                format!(
                    "unknown handler `{other}`; use \"aws\" (the default), \"describe_access\", \"request_status\" or \"request_cancel\""
                ),
            ));
            None
        }
    };
    if matches!(handler, Some(Handler::Aws(_))) {
        match arguments.iter().find(|a| a.kind == ArgKind::Environment) {
            Some(a) if a.name == "environment" && a.required => {}
            _ => errs.push(f.error(
                None,
                "an AWS tool needs a required argument named `environment` of type \"environment\"",
            )),
        }
    }

    // Output.
    let output = match &raw.output {
        None => OutputSpec {
            max_items: DEFAULT_MAX_ITEMS,
            max_bytes: DEFAULT_MAX_BYTES,
            ..Default::default()
        },
        Some(o) => {
            let span = o.span();
            let o = o.get_ref();
            let max_items = o.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
            let max_bytes = o.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
            if max_items == 0 || max_items > MAX_ITEMS_CEILING {
                errs.push(f.error(
                    Some(span.clone()),
                    format!("output.max_items must be 1..={MAX_ITEMS_CEILING}"),
                ));
            }
            if !(1024..=MAX_BYTES_CEILING).contains(&max_bytes) {
                errs.push(f.error(
                    Some(span.clone()),
                    format!("output.max_bytes must be 1024..={MAX_BYTES_CEILING}"),
                ));
            }
            if let Some(l) = &o.limit_argument
                && !arguments
                    .iter()
                    .any(|a| &a.name == l && a.kind == ArgKind::Integer)
            {
                errs.push(f.error(
                    Some(span.clone()),
                    format!("output.limit_argument `{l}` is not an integer argument"),
                ));
            }
            let fields = o
                .fields
                .iter()
                .map(|fs| field_spec(fs.get_ref()))
                .collect::<Vec<_>>();
            if let Some(m) = &o.only
                && (!fields.iter().any(|fs| fs.name == m.field)
                    || !arguments.iter().any(|a| a.name == m.argument))
            {
                errs.push(f.error(
                    Some(span.clone()),
                    format!(
                        "output.match needs an output field `{}` and an argument `{}`",
                        m.field, m.argument
                    ),
                ));
            }
            if let Some(s) = &o.sort_by
                && !fields.iter().any(|fs| &fs.name == s)
            {
                errs.push(f.error(
                    Some(span.clone()),
                    format!("output.sort_by `{s}` is not an output field"),
                ));
            }
            OutputSpec {
                items: o.items.clone(),
                fields,
                max_items,
                max_bytes,
                limit_argument: o.limit_argument.clone(),
                sort_by: o.sort_by.clone(),
                keep: o.keep,
                protection: o.protection.as_ref().map(|p| ProtectionSpec {
                    id: p.id.clone(),
                    tags: p.tags.clone(),
                }),
                note: o.note.clone(),
                only: o.only.as_ref().map(|m| OnlyMatching {
                    field: m.field.clone(),
                    argument: m.argument.clone(),
                }),
            }
        }
    };
    let _ = arg_names;

    // Destructive tools: one resource, a reason, a describe step and a declared backup.
    let describe = raw.describe.as_ref().map(|d| {
        let dd = d.get_ref();
        let mut refs = BTreeSet::new();
        collect_placeholders(
            &Value::Object(
                serde_json::to_value(&dd.arguments)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .unwrap_or_default(),
            ),
            &mut refs,
        );
        for p in refs {
            if !arguments.iter().any(|a| a.name == p) {
                errs.push(f.error(
                    Some(d.span()),
                    format!(
                        "[describe] arguments use `${{{p}}}`, which is not an argument of this tool"
                    ),
                ));
            }
        }
        DescribeSpec {
            tool: dd.tool.get_ref().clone(),
            arguments: serde_json::to_value(&dd.arguments)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default(),
            unchanged: dd.unchanged.clone(),
            not_found: dd.not_found.clone(),
        }
    });
    let backup = raw.backup.as_ref().map(|b| {
        let bb = b.get_ref();
        if bb.kind == BackupKind::None
            && bb
                .none_reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty())
        {
            errs.push(f.error(
                Some(b.span()),
                "backup kind \"none\" needs `none_reason`: say why this action needs no backup",
            ));
        }
        bb.kind
    });
    if risk == Risk::Destructive {
        let res: Vec<&ArgSpec> = arguments.iter().filter(|a| a.resource).collect();
        if res.len() != 1 || res[0].kind != ArgKind::String || !res[0].required {
            errs.push(f.error(None, "a destructive tool must have exactly one resource argument: a required string (`resource = true`), the one resource the request is bound to"));
        }
        if !arguments
            .iter()
            .any(|a| a.name == "reason" && a.kind == ArgKind::String && a.required)
        {
            errs.push(f.error(None, "a destructive tool needs a required string argument `reason`: the human approver reads it"));
        }
        if describe.is_none() {
            errs.push(f.error(None, "a destructive tool needs [describe]: a read tool that shows the resource before it is queued and before it is executed"));
        }
        // The service as written, not the validated [aws] spec: a mistake elsewhere in [aws]
        // (reported on its own) must not turn into a bogus "this tool calls ``" here.
        // A built-in handler calls no service; an `aws` tool without [aws] is reported already.
        let service = match &raw.aws {
            Some(a) => Some(a.get_ref().service.get_ref().as_str()),
            None if handler_name == "aws" => None,
            None => Some(""),
        };
        let needs = match backup {
            Some(BackupKind::EbsSnapshot | BackupKind::SnapshotCopy) => Some("ec2"),
            Some(BackupKind::RdsSnapshot) => Some("rds"),
            Some(BackupKind::LogsExport) => Some("logs"),
            _ => None,
        };
        if let (Some(needs), Some(b), Some(service)) = (needs, &raw.backup, service)
            && service != needs
        {
            errs.push(f.error(
                Some(b.span()),
                format!("this backup kind is for `{needs}` tools, but this tool calls `{service}`; pick the backup kind of the resource it deletes"),
            ));
        }
        if backup.is_none() {
            errs.push(f.error(None, "a destructive tool needs [backup] (kind = \"ebs_snapshot\", \"snapshot_copy\", \"rds_snapshot\", \"logs_export\", or \"none\" with none_reason)"));
        }
    } else if raw.describe.is_some() || raw.backup.is_some() {
        errs.push(f.error(
            None,
            "[describe] and [backup] belong to destructive tools only",
        ));
    }

    if !errs.is_empty() {
        return Err(SourceErrors(errs));
    }
    let handler = handler.expect("handler is set when there are no errors");
    let input_schema = Arc::new(args::input_schema(&arguments));
    Ok(ToolSpec {
        name,
        title: raw.title.clone(),
        description: raw.description.into_inner(),
        risk,
        arguments,
        time_range,
        handler,
        output,
        input_schema,
        path: f.path.clone(),
        describe,
        backup,
        backup_note: raw
            .backup
            .as_ref()
            .and_then(|b| b.get_ref().none_reason.clone()),
    })
}

fn field_spec(r: &raw::RawField) -> FieldSpec {
    FieldSpec {
        name: r.name.clone(),
        path: r.path.clone(),
        kind: r.kind,
        redact: r.redact,
        missing: r.missing.clone(),
        fields: r.fields.iter().map(field_spec).collect(),
    }
}

fn validate_aws(
    f: &SourceFile,
    aws: &serde_spanned::Spanned<raw::RawAws>,
    risk: Risk,
    arguments: &[ArgSpec],
    errs: &mut Vec<SourceError>,
) -> Option<AwsSpec> {
    let a = aws.get_ref();
    let before = errs.len();
    let service = a.service.get_ref();
    if !service
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || service.is_empty()
    {
        errs.push(f.error(
            Some(a.service.span()),
            format!(
                "service `{service}` must be an AWS endpoint prefix such as \"ec2\" or \"logs\""
            ),
        ));
    }
    match a.protocol {
        Protocol::Ec2 | Protocol::Query if a.version.is_none() => {
            errs.push(f.error(
                Some(aws.span()),
                "query protocols need `version` (the API version, e.g. \"2016-11-15\" for EC2)",
            ));
        }
        Protocol::Json
            if a.target.is_none()
                && (a.calls.is_empty() || a.calls.iter().any(|c| c.get_ref().target.is_none())) =>
        {
            errs.push(f.error(Some(aws.span()), "the json protocol needs `target` (the X-Amz-Target header, e.g. \"Logs_20140328.FilterLogEvents\")"));
        }
        Protocol::RestXml if a.calls.is_empty() && a.path.is_none() => {
            errs.push(f.error(Some(aws.span()), "the rest_xml protocol needs `path` (e.g. \"/${bucket}\"; \"/\" for the service root)"));
        }
        _ => {}
    }
    if let Some(jv) = &a.json_version {
        let v = *jv.get_ref();
        if a.protocol != Protocol::Json {
            errs.push(f.error(
                Some(jv.span()),
                "`json_version` belongs to the json protocol; remove it",
            ));
        } else if let Some(want) = known_json_version(service)
            && v != want
        {
            errs.push(f.error(
                Some(jv.span()),
                format!(
                    "`{service}` speaks awsJson {}, not {}; set json_version = \"{}\"",
                    want.as_str(),
                    v.as_str(),
                    want.as_str()
                ),
            ));
        }
    } else if a.protocol == Protocol::Json
        && let Some(want) = known_json_version(service)
        && want != JsonVersion::default()
    {
        errs.push(f.error(
            Some(aws.span()),
            format!(
                "`{service}` speaks awsJson {v} (AWS refuses the default 1.1); add json_version = \"{v}\"",
                v = want.as_str()
            ),
        ));
    }
    // The wire action is what actually runs: in a read tool it must be a read verb too, whatever
    // the IAM actions say.
    let action = a.action.get_ref();
    if action.is_empty() || !action.chars().all(|c| c.is_ascii_alphanumeric()) {
        errs.push(f.error(
            Some(a.action.span()),
            format!("action `{action}` must be the API action's name, e.g. \"DescribeVolumes\""),
        ));
    } else if risk == Risk::Read && !is_read_verb(action) {
        errs.push(f.error(
            Some(a.action.span()),
            format!("action `{action}` is not a read action, but this tool's risk is \"read\"; make it \"destructive\" (which goes through approval)"),
        ));
    }
    if a.protocol != Protocol::RestXml && (a.path.is_some() || a.method.is_some()) {
        errs.push(f.error(
            Some(aws.span()),
            "`path` and `method` belong to the rest_xml protocol; remove them",
        ));
    }
    let method = check_method(f, aws, a.method.as_deref(), risk, errs);
    if let Some(p) = &a.path
        && let Err(e) = check_path(p.get_ref(), arguments)
    {
        errs.push(f.error(Some(p.span()), e));
    }
    let mut calls = Vec::new();
    let mut call_names = BTreeSet::new();
    if !a.calls.is_empty() && (a.request.is_some() || a.path.is_some() || a.pagination.is_some()) {
        errs.push(f.error(Some(aws.span()), "a tool with [[aws.calls]] puts `request` and `path` in each call, and cannot paginate; remove them from [aws]"));
    }
    if !a.calls.is_empty() && risk != Risk::Read {
        errs.push(f.error(Some(aws.span()), "[[aws.calls]] is for read tools; a write or destructive tool makes exactly one request"));
    }
    for c in &a.calls {
        let cc = c.get_ref();
        if !call_names.insert(cc.name.clone())
            || cc.name.is_empty()
            || !cc
                .name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        {
            errs.push(f.error(
                Some(c.span()),
                format!(
                    "call name `{}` must be unique, lowercase letters, digits and `_`",
                    cc.name
                ),
            ));
        }
        if a.protocol == Protocol::RestXml && cc.path.is_none() {
            errs.push(f.error(Some(c.span()), "each rest_xml call needs `path`"));
        }
        if a.protocol != Protocol::RestXml && (cc.path.is_some() || cc.method.is_some()) {
            errs.push(f.error(
                Some(c.span()),
                "`path` and `method` belong to the rest_xml protocol; remove them",
            ));
        }
        if let Some(p) = &cc.path
            && let Err(e) = check_path(p.get_ref(), arguments)
        {
            errs.push(f.error(Some(p.span()), e));
        }
        if risk == Risk::Read && !is_read_verb(&cc.action) {
            errs.push(f.error(
                Some(c.span()),
                format!(
                    "call action `{}` is not a read action, but this tool's risk is \"read\"",
                    cc.action
                ),
            ));
        }
        let request = template(f, cc.request.as_ref(), arguments, errs);
        calls.push(CallSpec {
            name: cc.name.clone(),
            action: cc.action.clone(),
            method: check_method(f, c, cc.method.as_deref(), risk, errs),
            path: cc.path.as_ref().map(|p| p.get_ref().clone()),
            target: cc.target.clone(),
            request,
            absent: cc.absent.clone(),
        });
    }
    if a.iam_actions.is_empty() {
        errs.push(f.error(
            Some(aws.span()),
            "iam_actions must name at least one action",
        ));
    }
    for act in &a.iam_actions {
        let s = act.get_ref();
        let Some((svc, verb)) = s.split_once(':') else {
            errs.push(f.error(
                Some(act.span()),
                format!("`{s}` is not an IAM action; write it as \"service:Action\""),
            ));
            continue;
        };
        if s.contains('*') || s.contains('?') {
            errs.push(f.error(
                Some(act.span()),
                format!("`{s}` is a wildcard action; name each action exactly"),
            ));
            continue;
        }
        if svc.is_empty() || verb.is_empty() || !verb.chars().all(|c| c.is_ascii_alphanumeric()) {
            errs.push(f.error(
                Some(act.span()),
                format!("`{s}` is not an IAM action; write it as \"service:Action\""),
            ));
            continue;
        }
        if risk == Risk::Read && !is_read_verb(verb) {
            errs.push(f.error(
                Some(act.span()),
                format!("`{s}` is not a read action, but this tool's risk is \"read\"; make it \"write\" or \"destructive\" (which go through approval)"),
            ));
        }
    }
    if a.resources.is_empty() {
        errs.push(f.error(
            Some(aws.span()),
            "resources must name at least one ARN template (or \"*\" with wildcard_reason)",
        ));
    }
    for r in &a.resources {
        let s = r.get_ref();
        if s == "*" {
            if a.resources.len() > 1 {
                errs.push(f.error(Some(r.span()), "\"*\" cannot be mixed with ARN templates"));
            }
            if a.wildcard_reason
                .as_deref()
                .is_none_or(|w| w.trim().is_empty())
            {
                errs.push(f.error(Some(r.span()), "resource \"*\" needs `wildcard_reason`: say why the action has no resource-level permission"));
            }
            if risk != Risk::Read {
                errs.push(f.error(Some(r.span()), "only read tools may use resource \"*\"; a write or destructive tool must name its resource"));
            }
            continue;
        }
        if let Err(e) = check_arn_template(s, arguments) {
            errs.push(f.error(Some(r.span()), e));
        }
    }
    let request = template(f, a.request.as_ref(), arguments, errs);
    if let Some(p) = &a.pagination
        && (p.max_pages == 0 || p.max_pages > MAX_PAGES_CEILING)
    {
        errs.push(f.error(
            Some(aws.span()),
            format!("pagination.max_pages must be 1..={MAX_PAGES_CEILING}"),
        ));
    }
    if errs.len() > before {
        return None;
    }
    Some(AwsSpec {
        service: service.clone(),
        protocol: a.protocol,
        action: a.action.get_ref().clone(),
        version: a.version.clone(),
        target: a.target.clone(),
        json_version: a
            .json_version
            .as_ref()
            .map_or_else(JsonVersion::default, |v| *v.get_ref()),
        iam_actions: a.iam_actions.iter().map(|x| x.get_ref().clone()).collect(),
        resources: a.resources.iter().map(|x| x.get_ref().clone()).collect(),
        wildcard_reason: a.wildcard_reason.clone(),
        request,
        pagination: a.pagination.as_ref().map(|p| Pagination {
            request_token: p.request_token.clone(),
            response_token: p.response_token.clone(),
            max_pages: p.max_pages,
        }),
        already_done: a.already_done.clone(),
        method,
        path: a.path.as_ref().map(|p| p.get_ref().clone()),
        calls,
    })
}

/// The awsJson version of the JSON services airlock knows (`metadata.jsonVersion` in each
/// service's model): a tool file that says otherwise is refused, because AWS answers a wrong
/// `Content-Type` with an error page (and moto accepts either, so no test against it would tell).
fn known_json_version(service: &str) -> Option<JsonVersion> {
    match service {
        "dynamodb" => Some(JsonVersion::V1_0),
        "logs" | "ecs" => Some(JsonVersion::V1_1),
        _ => None,
    }
}

/// A request template: a table whose placeholders are arguments of the tool.
fn template(
    f: &SourceFile,
    t: Option<&serde_spanned::Spanned<toml::Table>>,
    arguments: &[ArgSpec],
    errs: &mut Vec<SourceError>,
) -> Map<String, Value> {
    let Some(t) = t else {
        return Map::new();
    };
    match serde_json::to_value(t.get_ref()) {
        Ok(Value::Object(m)) => {
            let mut refs = BTreeSet::new();
            collect_placeholders(&Value::Object(m.clone()), &mut refs);
            for p in refs {
                if !arguments.iter().any(|x| x.name == p)
                    && !matches!(p.as_str(), "key" | "value" | "item" | "region" | "account")
                {
                    errs.push(f.error(Some(t.span()), format!("the request template uses `${{{p}}}`, which is not an argument of this tool")));
                }
            }
            m
        }
        _ => {
            errs.push(f.error(Some(t.span()), "request must be a table"));
            Map::new()
        }
    }
}

/// A rest_xml request's HTTP method. What is sent is what runs: a read tool sends GET or HEAD,
/// whatever its action names say (`DELETE /bucket` deletes).
fn check_method<T>(
    f: &SourceFile,
    at: &serde_spanned::Spanned<T>,
    m: Option<&str>,
    risk: Risk,
    errs: &mut Vec<SourceError>,
) -> String {
    match m {
        None => "GET".into(),
        Some(m @ ("POST" | "PUT" | "DELETE")) if risk == Risk::Read => {
            errs.push(f.error(
                Some(at.span()),
                format!("method `{m}` can change things, but this tool's risk is \"read\"; a read tool sends GET or HEAD (make it \"destructive\", which goes through approval)"),
            ));
            m.into()
        }
        Some(m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE")) => m.into(),
        Some(other) => {
            errs.push(f.error(
                Some(at.span()),
                format!("method `{other}` must be one of GET, HEAD, POST, PUT, DELETE"),
            ));
            "GET".into()
        }
    }
}

/// A rest_xml path template: starts with `/`, and every argument in it is a required string
/// with a pattern (it becomes part of the URL the request is signed for).
fn check_path(p: &str, arguments: &[ArgSpec]) -> Result<(), String> {
    if !p.starts_with('/') || p.contains('?') || p.contains('#') {
        return Err(format!(
            "path `{p}` must start with \"/\" and hold no query (`?`) or fragment; the query is the request template"
        ));
    }
    let mut refs = BTreeSet::new();
    placeholders(p, &mut refs);
    for r in refs {
        match arguments.iter().find(|a| a.name == r) {
            Some(a) if a.kind == ArgKind::String && a.required && a.pattern.is_some() => {}
            _ => {
                return Err(format!(
                    "path `{p}` uses `${{{r}}}`, which must be a required string argument with a `pattern`"
                ));
            }
        }
    }
    Ok(())
}

/// An ARN template must keep the call inside its environment: `arn:${partition}:SERVICE:
/// ${region}|"":${account}|"":...`, and every argument it uses must be a required string with a
/// pattern, so a model cannot smuggle a wildcard or another account into the session policy.
fn check_arn_template(s: &str, arguments: &[ArgSpec]) -> Result<(), String> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[1] != "${partition}" {
        return Err(format!(
            "resource `{s}` must be an ARN template starting with \"arn:${{partition}}:\""
        ));
    }
    if !matches!(parts[3], "${region}" | "") {
        return Err(format!(
            "resource `{s}`: the region part must be ${{region}} (or empty for global resources)"
        ));
    }
    if !matches!(parts[4], "${account}" | "") {
        return Err(format!(
            "resource `{s}`: the account part must be ${{account}} (or empty), so calls stay in their environment's account"
        ));
    }
    // `*` inside an ARN would widen the scope beyond the validated resource; the one exception
    // is a final `:*`, which names the sub-resources of that one resource (CloudWatch Logs
    // evaluates log-group actions against `log-group:NAME:*`).
    let body = s.strip_suffix(":*").unwrap_or(s);
    if body.contains('*') || body.contains('?') {
        return Err(format!(
            "resource `{s}` contains a wildcard; build it from validated arguments (only a final \":*\" for sub-resources is allowed)"
        ));
    }
    let mut refs = BTreeSet::new();
    placeholders(s, &mut refs);
    let mut uses_argument = false;
    for p in refs {
        if ENV_PLACEHOLDERS.contains(&p.as_str()) {
            continue;
        }
        match arguments.iter().find(|a| a.name == p) {
            None => {
                return Err(format!(
                    "resource `{s}` uses `${{{p}}}`, which is not an argument of this tool"
                ));
            }
            Some(a) if a.kind != ArgKind::String || !a.required || a.pattern.is_none() => {
                return Err(format!(
                    "resource `{s}` uses argument `{p}`, which must be a required string with a `pattern` to reach an ARN"
                ));
            }
            Some(a) => {
                let pattern = a.pattern.as_ref().map(Regex::as_str).unwrap_or_default();
                if let Some(problem) = arn_pattern_problem(pattern, a.max_length) {
                    return Err(format!("resource `{s}` uses argument `{p}`, but {problem}"));
                }
                uses_argument = true;
            }
        }
    }
    if !uses_argument {
        return Err(format!(
            "resource `{s}` does not use any validated argument; name the resource from the call's arguments"
        ));
    }
    Ok(())
}

/// A read verb: one of [`READ_VERBS`] followed by the start of a word (`DescribeVolumes`,
/// `GetObject`), never a verb that merely begins with the same letters (`Getaway`).
fn is_read_verb(verb: &str) -> bool {
    READ_VERBS.iter().any(|v| {
        verb.strip_prefix(v).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
        })
    })
}

/// Why `pattern` cannot safely reach an ARN: it accepts unboundedly long values (and the
/// argument has no `max_length`), or it accepts `*` or `?`, which IAM reads as wildcards.
fn arn_pattern_problem(pattern: &str, max_length: Option<usize>) -> Option<String> {
    let hir = match regex_syntax::Parser::new().parse(pattern) {
        Ok(h) => h,
        Err(e) => return Some(format!("its pattern does not parse: {e}")),
    };
    if may_match_wildcard(&hir) {
        return Some(
            "its pattern accepts `*` or `?`, which IAM reads as wildcards; exclude them from the pattern".into(),
        );
    }
    if hir.properties().maximum_len().is_none() && max_length.is_none() {
        return Some(
            "its pattern accepts values of any length; bound it (e.g. `{1,128}`) or set `max_length`".into(),
        );
    }
    None
}

/// Whether a regular expression can match a string holding `*` or `?`: true when any literal
/// or class in it contains one of them.
fn may_match_wildcard(h: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    let wild = |c: u32| c == u32::from('*') || c == u32::from('?');
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(l) => l.0.iter().any(|b| wild(u32::from(*b))),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| ['*', '?'].iter().any(|w| r.start() <= *w && *w <= r.end())),
        HirKind::Class(Class::Bytes(c)) => c.ranges().iter().any(|r| {
            [b'*', b'?']
                .iter()
                .any(|w| r.start() <= *w && *w <= r.end())
        }),
        HirKind::Repetition(r) => may_match_wildcard(&r.sub),
        HirKind::Capture(c) => may_match_wildcard(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(may_match_wildcard),
    }
}

fn anchored(p: &str) -> Result<Regex, String> {
    if !p.starts_with('^') || !p.ends_with('$') {
        return Err(format!(
            "pattern `{p}` must be anchored: start with ^ and end with $"
        ));
    }
    Regex::new(p).map_err(|e| format!("pattern `{p}` does not compile: {e}"))
}

fn valid_tool_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some('a'..='z'))
        && n.len() <= 64
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

/// Collect the `${name}` placeholders in a string.
pub fn placeholders(s: &str, out: &mut BTreeSet<String>) {
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.insert(after[..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
}

/// Placeholders of a request template; `${a|b}` (a, else b) names both.
fn collect_placeholders(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            let mut names = BTreeSet::new();
            placeholders(s, &mut names);
            out.extend(names.iter().flat_map(|n| n.split('|')).map(str::to_string));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_placeholders(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$each" || k == "$when" {
                    if let Value::String(s) = x {
                        out.insert(s.clone());
                    }
                } else {
                    collect_placeholders(x, out);
                }
            }
        }
        _ => {}
    }
}

/// A short, human summary of a tool for listings.
pub fn summary(t: &ToolSpec) -> Value {
    json!({
        "name": t.name,
        "risk": t.risk.as_str(),
        "actions": t.aws().map(|a| a.iam_actions.clone()).unwrap_or_default(),
        "resources": t.aws().map(|a| a.resources.clone()).unwrap_or_default(),
        "file": t.path.display().to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
