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
mod validate;

pub use validate::parse_tool;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value, json};

pub use raw::{ArgKind, BackupKind, FieldKind, JsonVersion, Keep, Protocol, Risk};

use crate::config::source::{SourceError, SourceErrors, SourceFile};

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
    pub require: Vec<Require>,
}

/// A precondition of a destructive action on its resource (see [`raw::RawRequire`]).
#[derive(Debug, Clone)]
pub struct Require {
    pub field: String,
    pub equals: Value,
    pub refusal: String,
    pub what_to_do: String,
}

impl DescribeSpec {
    /// The first precondition `resource` (as the `[describe]` tool shows it) does not meet,
    /// with the value found there.
    pub fn unmet<'a>(&'a self, resource: &'a Value) -> Option<(&'a Require, &'a Value)> {
        self.require.iter().find_map(|r| {
            let found = resource.get(&r.field).unwrap_or(&Value::Null);
            (found != &r.equals).then_some((r, found))
        })
    }
}

impl Require {
    /// Why the action cannot run, with the value found.
    pub fn why(&self, found: &Value) -> String {
        let shown = found
            .as_str()
            .map_or_else(|| found.to_string(), str::to_string);
        self.refusal.replace("${value}", &shown)
    }
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
            SourceErrors::from(SourceError::whole_file(
                dir,
                format!("cannot read the tools folder: {e}"),
            ))
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        Self::from_files(read_tool_files(&paths)?)
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
                    Some(dt) if dt.risk == Risk::Read && dt.aws().is_some() => {
                        let named = d
                            .unchanged
                            .iter()
                            .chain(d.require.iter().map(|r| &r.field));
                        for field in named {
                            if !dt.output.fields.iter().any(|o| &o.name == field) {
                                errors.push(f.error(
                                    None,
                                    format!(
                                        "[describe] names field `{field}`, which `{}` does not output; its fields: {}",
                                        d.tool,
                                        dt.output.fields.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
                                    ),
                                ));
                            }
                        }
                    }
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
            Err(SourceErrors::sorted(errors))
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

/// The tool files at `paths`, read (every unreadable one is an error).
pub fn read_tool_files(paths: &[PathBuf]) -> Result<Vec<SourceFile>, SourceErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(t) => files.push(SourceFile::new(p, t)),
            Err(e) => errors.push(SourceError::whole_file(
                p,
                format!("cannot read the tool file: {e}"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(SourceErrors(errors))
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
