//! One tool file, validated into a [`ToolSpec`], a section at a time: the header, the
//! arguments, the time range, the handler and its `[aws]` table ([`aws`]), the output, and what
//! destructive tools must declare (`[describe]`, `[backup]`). Every problem is collected and
//! reported as `file:LINE:COL:`.

mod aws;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use serde_spanned::Spanned;

use super::raw::{self, RawTool};
use super::{
    ArgKind, ArgSpec, BackupKind, DescribeSpec, FieldSpec, Handler, OnlyMatching, OutputSpec,
    ProtectionSpec, Require, Risk, TimeRange, ToolSpec, args,
};
use crate::config::source::{SourceError, SourceErrors, SourceFile};
use crate::timefmt::parse_duration;

pub(crate) use aws::collect_placeholders;

const DEFAULT_MAX_ITEMS: usize = 500;
const DEFAULT_MAX_BYTES: usize = 64 * 1024;
/// Hard ceilings a tool file cannot raise.
const MAX_ITEMS_CEILING: usize = 10_000;
const MAX_BYTES_CEILING: usize = 1024 * 1024;
/// The longest time range a tool may allow.
const MAX_TIME_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);

/// Collects every problem of one tool file.
pub(super) struct Check<'a> {
    pub f: &'a SourceFile,
    pub errs: Vec<SourceError>,
}

impl Check<'_> {
    pub fn at<T>(&mut self, v: &Spanned<T>, message: impl Into<String>) {
        self.errs.push(self.f.error(Some(v.span()), message));
    }

    /// An error for the file as a whole.
    pub fn file(&mut self, message: impl Into<String>) {
        self.errs.push(self.f.error(None, message));
    }
}

/// Parse and validate one tool file.
pub fn parse_tool(f: &SourceFile) -> Result<ToolSpec, SourceErrors> {
    let raw: RawTool = f.parse_toml()?;
    let mut c = Check {
        f,
        errs: Vec::new(),
    };
    header(&mut c, &raw);
    let risk = *raw.risk.get_ref();
    let arguments: Vec<ArgSpec> = arguments(&mut c, &raw.arguments);
    let time_range = raw
        .time_range
        .as_ref()
        .and_then(|t| time_range(&mut c, t, &arguments));
    let handler = handler(&mut c, &raw, risk, &arguments);
    let output = raw
        .output
        .as_ref()
        .map_or_else(default_output, |o| output(&mut c, o, &arguments));
    let describe = raw
        .describe
        .as_ref()
        .map(|d| describe(&mut c, d, &arguments));
    let backup = raw.backup.as_ref().map(|b| backup(&mut c, b));
    if risk == Risk::Destructive {
        destructive(&mut c, &raw, &arguments, describe.is_some(), backup);
    } else if raw.describe.is_some() || raw.backup.is_some() {
        c.file("[describe] and [backup] belong to destructive tools only");
    }
    let (Some(handler), true) = (handler, c.errs.is_empty()) else {
        return Err(SourceErrors::sorted(c.errs));
    };
    let input_schema = Arc::new(args::input_schema(&arguments));
    Ok(ToolSpec {
        name: raw.name.get_ref().clone(),
        title: raw.title.clone(),
        description: raw.description.get_ref().clone(),
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

/// The name and the description the model reads.
fn header(c: &mut Check, raw: &RawTool) {
    let name = raw.name.get_ref();
    if !valid_tool_name(name) {
        c.at(
            &raw.name,
            format!("tool name `{name}` must be lowercase letters, digits and `_`, starting with a letter (at most 64)"),
        );
    }
    if raw.description.get_ref().trim().is_empty() {
        c.at(
            &raw.description,
            "the description is what the model reads to choose this tool; it must not be empty",
        );
    }
}

fn arguments(c: &mut Check, raw: &[Spanned<raw::RawArgument>]) -> Vec<ArgSpec> {
    let mut seen = BTreeSet::new();
    raw.iter()
        .map(|a| {
            if !seen.insert(a.get_ref().name.get_ref().clone()) {
                c.at(
                    &a.get_ref().name,
                    format!(
                        "argument `{}` is declared twice",
                        a.get_ref().name.get_ref()
                    ),
                );
            }
            argument(c, a)
        })
        .collect()
}

/// One `[[arguments]]` entry.
fn argument(c: &mut Check, sa: &Spanned<raw::RawArgument>) -> ArgSpec {
    let a = sa.get_ref();
    let an = a.name.get_ref();
    let mut compile = |p: &Option<Spanned<String>>| {
        p.as_ref().and_then(|p| match anchored(p.get_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                c.at(p, e);
                None
            }
        })
    };
    let pattern = compile(&a.pattern);
    let key_pattern = compile(&a.key_pattern);
    let value_pattern = compile(&a.value_pattern);
    let kind = *a.kind.get_ref();
    let default = a
        .default
        .as_ref()
        .and_then(|v| match serde_json::to_value(v) {
            Ok(v) => Some(v),
            Err(e) => {
                c.at(sa, format!("bad default: {e}"));
                None
            }
        });
    if a.resource && !matches!(kind, ArgKind::String | ArgKind::StringList) {
        c.at(
            &a.kind,
            format!(
                "argument `{an}` is marked `resource = true`, so it must be a string or string_list"
            ),
        );
    }
    if a.resource && pattern.is_none() {
        c.at(
            sa,
            format!("argument `{an}` names a resource, so it needs a `pattern` (e.g. \"^vol-[0-9a-f]{{8,17}}$\") that excludes wildcards"),
        );
    }
    if matches!(kind, ArgKind::StringList | ArgKind::StringMap) && a.max_items.is_none() {
        c.at(
            sa,
            format!("argument `{an}` is a list or map, so it needs `max_items`"),
        );
    }
    ArgSpec {
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
    }
}

fn time_range(
    c: &mut Check,
    tr: &Spanned<raw::RawTimeRange>,
    arguments: &[ArgSpec],
) -> Option<TimeRange> {
    let t = tr.get_ref();
    let mut ok = true;
    for n in [&t.start, &t.end] {
        if !arguments
            .iter()
            .any(|a| &a.name == n && a.kind == ArgKind::Timestamp)
        {
            c.at(
                tr,
                format!("time_range names `{n}`, which is not a timestamp argument"),
            );
            ok = false;
        }
    }
    let mut span = |s: &str| parse_duration(s).map_err(|e| c.at(tr, e)).ok();
    let max_span = span(&t.max_span);
    let default_span = span(&t.default_span);
    if let (Some(max), Some(default)) = (max_span, default_span)
        && (max > MAX_TIME_SPAN || default > max)
    {
        c.at(
            tr,
            "time_range spans must satisfy default_span <= max_span <= 366d",
        );
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
}

/// What the tool does when called; `None` (with the errors) when that cannot be said.
fn handler(c: &mut Check, raw: &RawTool, risk: Risk, arguments: &[ArgSpec]) -> Option<Handler> {
    let handler = match handler_name(raw) {
        "aws" => match &raw.aws {
            None => {
                c.file("an `aws` tool needs an [aws] table (service, protocol, action, iam_actions, resources)");
                None
            }
            Some(a) => aws::validate(c, a, risk, arguments).map(|a| Handler::Aws(Box::new(a))),
        },
        local @ ("describe_access" | "request_status" | "request_cancel") => {
            if let Some(a) = &raw.aws {
                c.at(
                    a,
                    format!("the {local} handler makes no AWS call; remove [aws]"),
                );
            }
            Some(match local {
                "describe_access" => Handler::DescribeAccess,
                "request_status" => Handler::RequestStatus,
                _ => Handler::RequestCancel,
            })
        }
        other => {
            let span = raw.handler.as_ref().map(|h| h.span());
            c.errs.push(c.f.error(
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
            _ => c.file(
                "an AWS tool needs a required argument named `environment` of type \"environment\"",
            ),
        }
    }
    handler
}

fn handler_name(raw: &RawTool) -> &str {
    raw.handler
        .as_ref()
        .map(|h| h.get_ref().as_str())
        .unwrap_or("aws")
}

fn default_output() -> OutputSpec {
    OutputSpec {
        max_items: DEFAULT_MAX_ITEMS,
        max_bytes: DEFAULT_MAX_BYTES,
        ..Default::default()
    }
}

fn output(c: &mut Check, so: &Spanned<raw::RawOutput>, arguments: &[ArgSpec]) -> OutputSpec {
    let o = so.get_ref();
    let max_items = o.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
    let max_bytes = o.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_items == 0 || max_items > MAX_ITEMS_CEILING {
        c.at(
            so,
            format!("output.max_items must be 1..={MAX_ITEMS_CEILING}"),
        );
    }
    if !(1024..=MAX_BYTES_CEILING).contains(&max_bytes) {
        c.at(
            so,
            format!("output.max_bytes must be 1024..={MAX_BYTES_CEILING}"),
        );
    }
    if let Some(l) = &o.limit_argument
        && !arguments
            .iter()
            .any(|a| &a.name == l && a.kind == ArgKind::Integer)
    {
        c.at(
            so,
            format!("output.limit_argument `{l}` is not an integer argument"),
        );
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
        c.at(
            so,
            format!(
                "output.match needs an output field `{}` and an argument `{}`",
                m.field, m.argument
            ),
        );
    }
    if let Some(s) = &o.sort_by
        && !fields.iter().any(|fs| &fs.name == s)
    {
        c.at(so, format!("output.sort_by `{s}` is not an output field"));
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

fn describe(c: &mut Check, d: &Spanned<raw::RawDescribe>, arguments: &[ArgSpec]) -> DescribeSpec {
    let dd = d.get_ref();
    let template = serde_json::to_value(&dd.arguments)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut refs = BTreeSet::new();
    collect_placeholders(&Value::Object(template.clone()), &mut refs);
    for p in refs {
        if !arguments.iter().any(|a| a.name == p) {
            c.at(
                d,
                format!(
                    "[describe] arguments use `${{{p}}}`, which is not an argument of this tool"
                ),
            );
        }
    }
    DescribeSpec {
        tool: dd.tool.get_ref().clone(),
        arguments: template,
        unchanged: dd.unchanged.clone(),
        not_found: dd.not_found.clone(),
        require: dd
            .require
            .iter()
            .map(|r| {
                let rr = r.get_ref();
                if rr.field.trim().is_empty()
                    || rr.refusal.trim().is_empty()
                    || rr.what_to_do.trim().is_empty()
                {
                    c.at(
                        r,
                        "[[describe.require]] needs a `field`, a `refusal` and a `what_to_do`",
                    );
                }
                Require {
                    field: rr.field.clone(),
                    equals: serde_json::to_value(&rr.equals).unwrap_or(Value::Null),
                    refusal: rr.refusal.clone(),
                    what_to_do: rr.what_to_do.clone(),
                }
            })
            .collect(),
    }
}

fn backup(c: &mut Check, b: &Spanned<raw::RawBackup>) -> BackupKind {
    let bb = b.get_ref();
    if bb.kind == BackupKind::None
        && bb
            .none_reason
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        c.at(
            b,
            "backup kind \"none\" needs `none_reason`: say why this action needs no backup",
        );
    }
    bb.kind
}

/// Destructive tools: one resource, a reason, a describe step and a declared backup that fits
/// the service.
fn destructive(
    c: &mut Check,
    raw: &RawTool,
    arguments: &[ArgSpec],
    has_describe: bool,
    backup: Option<BackupKind>,
) {
    let res: Vec<&ArgSpec> = arguments.iter().filter(|a| a.resource).collect();
    if res.len() != 1 || res[0].kind != ArgKind::String || !res[0].required {
        c.file("a destructive tool must have exactly one resource argument: a required string (`resource = true`), the one resource the request is bound to");
    }
    if !arguments
        .iter()
        .any(|a| a.name == "reason" && a.kind == ArgKind::String && a.required)
    {
        c.file("a destructive tool needs a required string argument `reason`: the human approver reads it");
    }
    if !has_describe {
        c.file("a destructive tool needs [describe]: a read tool that shows the resource before it is queued and before it is executed");
    }
    // The service as written, not the validated [aws] spec: a mistake elsewhere in [aws]
    // (reported on its own) must not turn into a bogus "this tool calls ``" here.
    // A built-in handler calls no service; an `aws` tool without [aws] is reported already.
    let service = match &raw.aws {
        Some(a) => Some(a.get_ref().service.get_ref().as_str()),
        None if handler_name(raw) == "aws" => None,
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
        c.at(
            b,
            format!("this backup kind is for `{needs}` tools, but this tool calls `{service}`; pick the backup kind of the resource it deletes"),
        );
    }
    if backup.is_none() {
        c.file("a destructive tool needs [backup] (kind = \"ebs_snapshot\", \"snapshot_copy\", \"rds_snapshot\", \"logs_export\", or \"none\" with none_reason)");
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
