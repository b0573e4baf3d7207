//! Tool arguments: the JSON Schema the model sees, and the validation every call passes before
//! anything else happens. Validation is the only way a value reaches a session policy or a
//! request, so it is strict: unknown fields, wrong types, values outside patterns and bounds are
//! all errors naming the field.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{ArgKind, ArgSpec, ToolSpec};
use crate::timefmt::{now_ms, parse_instant_ms};

/// A bad argument: which field, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument `{field}`: {message}")]
pub struct ArgError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ArgError {
    ArgError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Validated arguments in canonical order; timestamps are epoch milliseconds.
pub type Args = BTreeMap<String, Value>;

/// Longest string any argument may carry, whatever the tool file says.
const MAX_STRING: usize = 4096;

/// The JSON Schema for a tool's arguments.
pub fn input_schema(args: &[ArgSpec]) -> Map<String, Value> {
    let mut props = Map::new();
    let mut required = Vec::new();
    for a in args {
        let mut s = match a.kind {
            ArgKind::Environment | ArgKind::String => {
                let mut s = json!({"type": "string"});
                if let Some(p) = &a.pattern {
                    s["pattern"] = json!(p.as_str());
                }
                if let Some(m) = a.max_length {
                    s["maxLength"] = json!(m);
                }
                if let Some(c) = &a.choices {
                    s["enum"] = json!(c);
                }
                s
            }
            ArgKind::Integer => {
                let mut s = json!({"type": "integer"});
                if let Some(m) = a.minimum {
                    s["minimum"] = json!(m);
                }
                if let Some(m) = a.maximum {
                    s["maximum"] = json!(m);
                }
                s
            }
            ArgKind::Boolean => json!({"type": "boolean"}),
            ArgKind::Timestamp => json!({
                "type": ["string", "integer"],
                "description": "RFC 3339 (e.g. 2026-11-25T08:00:00Z) or epoch milliseconds"
            }),
            ArgKind::StringList => {
                let mut item = json!({"type": "string"});
                if let Some(p) = &a.pattern {
                    item["pattern"] = json!(p.as_str());
                }
                if let Some(c) = &a.choices {
                    item["enum"] = json!(c);
                }
                let mut s = json!({"type": "array", "items": item});
                if let Some(m) = a.max_items {
                    s["maxItems"] = json!(m);
                }
                s
            }
            ArgKind::StringMap => {
                let mut v = json!({"type": "string"});
                if let Some(p) = &a.value_pattern {
                    v["pattern"] = json!(p.as_str());
                }
                let mut s = json!({"type": "object", "additionalProperties": v});
                if let Some(p) = &a.key_pattern {
                    s["propertyNames"] = json!({"pattern": p.as_str()});
                }
                if let Some(m) = a.max_items {
                    s["maxProperties"] = json!(m);
                }
                s
            }
        };
        // The description the model reads; a timestamp's format note is kept after it.
        let desc = match s.get("description").and_then(Value::as_str) {
            Some(extra) => format!("{} ({extra})", a.description),
            None => a.description.clone(),
        };
        s["description"] = json!(desc);
        if let Some(d) = &a.default {
            s["default"] = d.clone();
        }
        props.insert(a.name.clone(), s);
        if a.required {
            required.push(json!(a.name));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

/// Validate a call's arguments against the tool. `environments` are the names in the policy.
pub fn validate(
    tool: &ToolSpec,
    input: &Map<String, Value>,
    environments: &[&str],
) -> Result<Args, ArgError> {
    for k in input.keys() {
        if tool.argument(k).is_none() {
            let known: Vec<&str> = tool.arguments.iter().map(|a| a.name.as_str()).collect();
            return Err(err(
                k,
                format!(
                    "`{}` does not take this argument; it takes: {}",
                    tool.name,
                    known.join(", ")
                ),
            ));
        }
    }
    let mut out = Args::new();
    for a in &tool.arguments {
        let v = match input.get(&a.name) {
            Some(Value::Null) | None => match &a.default {
                Some(d) => d.clone(),
                None if a.required => {
                    return Err(err(&a.name, format!("is required: {}", a.description)));
                }
                None => continue,
            },
            Some(v) => v.clone(),
        };
        let v = validate_one(a, &v, environments)?;
        out.insert(a.name.clone(), v);
    }
    if let Some(tr) = &tool.time_range {
        let end = out
            .get(&tr.end)
            .and_then(Value::as_i64)
            .unwrap_or_else(now_ms);
        // Saturating: spans are bounded when the tool file is loaded, but arithmetic on what a
        // caller sends must never overflow; the start of time is 1970.
        let span_ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let start = out
            .get(&tr.start)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| end.saturating_sub(span_ms(tr.default_span)).max(0));
        if start >= end {
            return Err(err(
                &tr.start,
                format!(
                    "must be before `{}` (got a reversed or empty time range)",
                    tr.end
                ),
            ));
        }
        let max = span_ms(tr.max_span);
        if end.saturating_sub(start) > max {
            return Err(err(
                &tr.start,
                format!(
                    "the range from `{}` to `{}` is longer than the {} this tool allows; narrow it",
                    tr.start,
                    tr.end,
                    humantime::format_duration(tr.max_span)
                ),
            ));
        }
        out.insert(tr.start.clone(), json!(start));
        out.insert(tr.end.clone(), json!(end));
    }
    Ok(out)
}

fn validate_one(a: &ArgSpec, v: &Value, environments: &[&str]) -> Result<Value, ArgError> {
    let n = a.name.as_str();
    match a.kind {
        ArgKind::Environment => {
            let s = v
                .as_str()
                .ok_or_else(|| err(n, "must be a string (an environment name)"))?;
            if !environments.contains(&s) {
                return Err(err(
                    n,
                    format!(
                        "unknown environment `{}`; the policy defines: {}",
                        clip(s),
                        environments.join(", ")
                    ),
                ));
            }
            Ok(json!(s))
        }
        ArgKind::String => {
            let s = v
                .as_str()
                .ok_or_else(|| err(n, format!("must be a string, got {}", type_name(v))))?;
            check_string(a, n, s)?;
            Ok(json!(s))
        }
        ArgKind::Integer => {
            let i = v
                .as_i64()
                .ok_or_else(|| err(n, format!("must be an integer, got {}", type_name(v))))?;
            if let Some(m) = a.minimum.filter(|m| i < *m) {
                return Err(err(n, format!("must be at least {m}, got {i}")));
            }
            if let Some(m) = a.maximum.filter(|m| i > *m) {
                return Err(err(n, format!("must be at most {m}, got {i}")));
            }
            Ok(json!(i))
        }
        ArgKind::Boolean => v
            .as_bool()
            .map(|b| json!(b))
            .ok_or_else(|| err(n, format!("must be true or false, got {}", type_name(v)))),
        ArgKind::Timestamp => timestamp(n, v),
        ArgKind::StringList => string_list(a, n, v),
        ArgKind::StringMap => string_map(a, n, v),
    }
}

/// A timestamp: RFC 3339 text or epoch milliseconds.
fn timestamp(n: &str, v: &Value) -> Result<Value, ArgError> {
    let ms = match v {
        Value::String(s) => parse_instant_ms(s).map_err(|e| err(n, e))?,
        Value::Number(x) => x
            .as_i64()
            .filter(|x| *x >= 0)
            .ok_or_else(|| err(n, "epoch milliseconds must be a non-negative integer"))?,
        _ => {
            return Err(err(
                n,
                format!(
                    "must be an RFC 3339 string or epoch milliseconds, got {}",
                    type_name(v)
                ),
            ));
        }
    };
    Ok(json!(ms))
}

/// A bounded list of strings, each checked like a string argument.
fn string_list(a: &ArgSpec, n: &str, v: &Value) -> Result<Value, ArgError> {
    let items = v.as_array().ok_or_else(|| {
        err(
            n,
            format!("must be a list of strings, got {}", type_name(v)),
        )
    })?;
    if let Some(m) = a.max_items.filter(|m| items.len() > *m) {
        return Err(err(
            n,
            format!("has {} items; at most {m} are allowed", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let field = format!("{n}[{i}]");
        let s = it
            .as_str()
            .ok_or_else(|| err(&field, format!("must be a string, got {}", type_name(it))))?;
        check_string(a, &field, s)?;
        out.push(json!(s));
    }
    Ok(Value::Array(out))
}

/// A bounded map of string keys to string values, each checked against its pattern.
fn string_map(a: &ArgSpec, n: &str, v: &Value) -> Result<Value, ArgError> {
    let m = v.as_object().ok_or_else(|| {
        err(
            n,
            format!("must be an object of strings, got {}", type_name(v)),
        )
    })?;
    if let Some(max) = a.max_items.filter(|x| m.len() > *x) {
        return Err(err(
            n,
            format!("has {} entries; at most {max} are allowed", m.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, x) in m {
        let field = format!("{n}.{}", clip(k));
        if let Some(p) = &a.key_pattern
            && !p.is_match(k)
        {
            return Err(err(&field, format!("key does not match {}", p.as_str())));
        }
        let s = x
            .as_str()
            .ok_or_else(|| err(&field, format!("must be a string, got {}", type_name(x))))?;
        if s.len() > MAX_STRING {
            return Err(err(&field, "is too long"));
        }
        if let Some(p) = &a.value_pattern
            && !p.is_match(s)
        {
            return Err(err(
                &field,
                format!("`{}` does not match {}", clip(s), p.as_str()),
            ));
        }
        out.insert(k.clone(), json!(s));
    }
    Ok(json!(out))
}

fn check_string(a: &ArgSpec, field: &str, s: &str) -> Result<(), ArgError> {
    let max = a.max_length.unwrap_or(MAX_STRING).min(MAX_STRING);
    if s.chars().count() > max {
        return Err(err(field, format!("is longer than {max} characters")));
    }
    if let Some(c) = &a.choices
        && !c.iter().any(|x| x == s)
    {
        return Err(err(
            field,
            format!("`{}` is not one of: {}", clip(s), c.join(", ")),
        ));
    }
    if a.resource
        && let Some(why) = non_canonical(s)
    {
        return Err(err(
            field,
            format!(
                "`{}` is not a canonical resource name: {why}. AWS names are literal, so write the name exactly as AWS shows it (the list tools show them)",
                clip(s)
            ),
        ));
    }
    if let Some(p) = &a.pattern
        && !p.is_match(s)
    {
        let hint = if s.contains('*') || s.contains('?') {
            " (wildcards are not accepted: name one exact resource)"
        } else {
            ""
        };
        return Err(err(
            field,
            format!("`{}` does not match {}{hint}", clip(s), p.as_str()),
        ));
    }
    Ok(())
}

/// Why a resource name is not in canonical form, if it is not: a `.` or `..` segment or an
/// empty one (a doubled or trailing `/`) would let a name that reads like one place pass a
/// rule written for another (`/app/dev/../../prod/db` against `/app/dev/*`).
fn non_canonical(s: &str) -> Option<&'static str> {
    if !s.contains('/') {
        return match s {
            "." | ".." => Some("`.` and `..` are not names"),
            _ => None,
        };
    }
    let segments: Vec<&str> = s.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => return Some("it has a `.` or `..` segment"),
            "" if i == 0 => {}
            "" if i == segments.len() - 1 => return Some("it ends with `/`"),
            "" => return Some("it has a doubled `/`"),
            _ => {}
        }
    }
    None
}

/// Echo at most 80 characters of a bad value back, so an error never carries a huge input.
fn clip(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        let head: String = s.chars().take(77).collect();
        format!("{head}...")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The canonical JSON text of validated arguments (sorted keys, no spaces).
pub fn canonical_json(args: &Args) -> String {
    serde_json::to_string(args).unwrap_or_default()
}
