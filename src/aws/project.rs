//! What a tool returns: the answer's items projected through the tool file's fields, marked
//! protected where the policy says so, sorted, capped in count and bytes (saying so), and with
//! secrets redacted from the fields the tool marks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::protocol::lookup;
use crate::catalogue::{FieldKind, FieldSpec, Keep, OutputSpec};
use crate::policy::Policy;
use crate::redact::{Redactor, SecretKind};
use crate::timefmt::format_ms;

/// The projected result of one call.
#[derive(Debug, Default)]
pub struct Projected {
    pub items: Vec<Value>,
    /// Items the service returned, before capping.
    pub seen: usize,
    /// Why items were left out, when they were.
    pub truncated: Vec<String>,
    pub redactions: usize,
    pub redacted_kinds: BTreeSet<SecretKind>,
}

/// Project fetched items. `limit` lowers `output.max_items` for this call.
pub fn project(
    out: &OutputSpec,
    raw_items: Vec<Value>,
    limit: Option<usize>,
    only: Option<(&str, &Value)>,
    policy: &Policy,
) -> Projected {
    let mut p = Projected {
        seen: raw_items.len(),
        ..Default::default()
    };
    let redactor = Redactor::global();
    let mut items: Vec<Value> = raw_items
        .iter()
        .map(|raw| {
            let mut obj = if out.fields.is_empty() {
                raw.clone()
            } else {
                Value::Object(fields(&out.fields, raw, redactor, &mut p))
            };
            if let (Some(prot), Value::Object(o)) = (&out.protection, &mut obj) {
                let id = lookup(raw, &prot.id)
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tags = prot
                    .tags
                    .as_deref()
                    .and_then(|t| lookup(raw, t))
                    .map(tags_of)
                    .unwrap_or_default();
                o.insert("protected".into(), json!(policy.is_protected(id, &tags)));
            }
            obj
        })
        .collect();
    if let Some((field, want)) = only {
        items.retain(|it| it.get(field) == Some(want));
        p.seen = items.len();
    }
    if let Some(key) = &out.sort_by {
        items.sort_by(|a, b| cmp_values(a.get(key), b.get(key)));
    }
    let cap = limit.map_or(out.max_items, |l| l.min(out.max_items));
    if items.len() > cap {
        let extra = items.len() - cap;
        match out.keep {
            Keep::First => items.truncate(cap),
            Keep::Last => {
                items.drain(..extra);
            }
        }
        p.truncated.push(format!(
            "{extra} of {} items left out (limit {cap}); kept the {}",
            p.seen,
            if out.keep == Keep::Last {
                "newest"
            } else {
                "first"
            }
        ));
    }
    // Byte cap on the serialised items, dropping from the end we do not keep.
    let sizes: Vec<usize> = items.iter().map(|v| v.to_string().len() + 1).collect();
    let total: usize = sizes.iter().sum();
    if total > out.max_bytes {
        let mut budget = out.max_bytes;
        let order: Vec<usize> = match out.keep {
            Keep::First => (0..items.len()).collect(),
            Keep::Last => (0..items.len()).rev().collect(),
        };
        let mut keep_n = 0;
        for i in order {
            if sizes[i] > budget {
                break;
            }
            budget -= sizes[i];
            keep_n += 1;
        }
        let dropped = items.len() - keep_n;
        match out.keep {
            Keep::First => items.truncate(keep_n),
            Keep::Last => {
                items.drain(..dropped);
            }
        }
        p.truncated.push(format!(
            "{dropped} more items left out to stay under {} bytes; narrow the call (filters, time range, limit)",
            out.max_bytes
        ));
    }
    p.items = items;
    p
}

fn fields(
    specs: &[FieldSpec],
    raw: &Value,
    redactor: &Redactor,
    p: &mut Projected,
) -> Map<String, Value> {
    let mut m = Map::new();
    for f in specs {
        let v = lookup(raw, &f.path).unwrap_or(&Value::Null);
        let mut out = match f.kind {
            FieldKind::String => match v {
                Value::Null => Value::Null,
                Value::String(s) => Value::String(s.clone()),
                other => Value::String(other.to_string()),
            },
            FieldKind::Integer => match v {
                Value::Number(_) => v.clone(),
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            },
            FieldKind::Boolean => match v {
                Value::Bool(_) => v.clone(),
                Value::String(s) => Value::Bool(s.eq_ignore_ascii_case("true")),
                _ => Value::Null,
            },
            FieldKind::Tags => json!(tags_of(v)),
            FieldKind::Time => match v {
                Value::Number(n) => n
                    .as_i64()
                    .map(|ms| Value::String(format_ms(ms)))
                    .unwrap_or(Value::Null),
                Value::String(s) => Value::String(s.clone()),
                _ => Value::Null,
            },
            FieldKind::List => {
                let list: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    Value::Null if f.missing.is_some() => {
                        m.insert(f.name.clone(), json!(f.missing));
                        continue;
                    }
                    Value::Null => Vec::new(),
                    one => vec![one],
                };
                Value::Array(
                    list.into_iter()
                        .map(|x| {
                            if f.fields.is_empty() {
                                x.clone()
                            } else {
                                Value::Object(fields(&f.fields, x, redactor, p))
                            }
                        })
                        .collect(),
                )
            }
            FieldKind::Raw => v.clone(),
        };
        if out.is_null()
            && let Some(m) = &f.missing
        {
            out = Value::String(m.clone());
        }
        if f.redact
            && let Value::String(s) = &out
        {
            let r = redactor.redact(s);
            if r.count > 0 {
                p.redactions += r.count;
                p.redacted_kinds.extend(r.kinds.iter().copied());
                out = Value::String(r.text.into_owned());
            }
        }
        m.insert(f.name.clone(), out);
    }
    m
}

/// `[{key, value}]` / `[{Key, Value}]` lists (EC2, RDS, ...) as a map.
pub fn tags_of(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let list: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => return out,
    };
    for t in list {
        let k = t
            .get("key")
            .or_else(|| t.get("Key"))
            .and_then(Value::as_str);
        let val = t
            .get("value")
            .or_else(|| t.get("Value"))
            .and_then(Value::as_str);
        if let Some(k) = k {
            out.insert(k.to_string(), val.unwrap_or_default().to_string());
        }
    }
    out
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Equal,
    }
}
