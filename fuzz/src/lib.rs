//! Shared helpers for the airlock fuzz targets (`fuzz_targets/*.rs`): the built-in catalogue,
//! the environments the targets validate against, and the decoding of fuzz bytes into tool
//! arguments (plain JSON, or values built per declared argument so that many inputs validate).

use std::sync::{Arc, LazyLock};

use airlock::catalogue::{ArgKind, ArgSpec, Catalogue, ToolSpec};
use airlock::policy::Environment;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// The environment names every argument target validates against.
pub const ENVIRONMENTS: &[&str] = &["staging", "prod"];

static CATALOGUE: LazyLock<Catalogue> =
    LazyLock::new(|| Catalogue::builtin().expect("the built-in catalogue must load"));

/// The built-in catalogue, loaded once per process.
pub fn catalogue() -> &'static Catalogue {
    &CATALOGUE
}

/// Every built-in tool, in name order.
pub fn builtin_tools() -> Vec<Arc<ToolSpec>> {
    catalogue().tools().cloned().collect()
}

/// The environment a call in `name` renders against (fixed account, region and partition).
pub fn environment(name: &str) -> Environment {
    Environment {
        name: name.to_string(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        partition: "aws".into(),
        agent_role: format!("arn:aws:iam::123456789012:role/airlock-agent-{name}"),
        ..Default::default()
    }
}

/// Decode fuzz bytes into (tool, raw argument object) pairs.
///
/// - Input starting with `{`: the whole input is a JSON object (`serde_json::from_slice`),
///   tried against every built-in tool. Seeds in `corpus/tool_args/*.json` are of this form.
/// - Any other first byte picks a tool (`byte % tools`); the rest drives [`arguments_for`],
///   which builds a value of roughly the right shape for each declared argument.
pub fn decode_calls(data: &[u8]) -> Vec<(Arc<ToolSpec>, Map<String, Value>)> {
    let tools = builtin_tools();
    match data.first() {
        None => Vec::new(),
        Some(b'{') => match serde_json::from_slice::<Map<String, Value>>(data) {
            Ok(m) => tools.into_iter().map(|t| (t, m.clone())).collect(),
            Err(_) => Vec::new(),
        },
        Some(&b) => {
            let tool = tools[b as usize % tools.len()].clone();
            let mut u = Unstructured::new(&data[1..]);
            match arguments_for(&mut u, &tool) {
                Ok(m) => vec![(tool, m)],
                Err(_) => Vec::new(),
            }
        }
    }
}

/// An argument object for `tool`: each declared argument a value of its declared kind (most
/// often), absent, null, or of a random JSON shape. Strings are built from a few alphabets
/// after the pattern's literal prefix (`vol-`, `r-`), so that patterns are often matched.
/// Sometimes an unknown key is added.
pub fn arguments_for(u: &mut Unstructured, tool: &ToolSpec) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    // Choices are ordered so that an exhausted input (every draw its minimum) still builds
    // typed values: `vol-` and eight `0`s is a valid volume id.
    for a in &tool.arguments {
        let v = match u.int_in_range(0u8..=9)? {
            0..=6 => typed_value(u, a)?,
            7 => continue,
            8 => Value::Null,
            _ => any_value(u, 3)?,
        };
        m.insert(a.name.clone(), v);
    }
    if u.int_in_range(0u8..=15)? == 15 {
        let k = text(u, Alphabet::Printable, 12)?;
        m.insert(k, any_value(u, 2)?);
    }
    Ok(m)
}

#[derive(Clone, Copy)]
enum Alphabet {
    Hex,
    /// The log-group class `[A-Za-z0-9_/.#-]`.
    NameSafe,
    Printable,
    /// Characters that matter in an ARN or a glob, mixed with letters.
    Dangerous,
    Any,
}

const HEX: &[u8] = b"0123456789abcdef";
const NAME_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/.#-";
const DANGEROUS: &[u8] = b"*?${}\"\\:/ \n\t[]=,abcZ09-_.";

fn alphabet(u: &mut Unstructured) -> Result<Alphabet> {
    Ok(match u.int_in_range(0u8..=5)? {
        0 | 1 => Alphabet::Hex,
        2 => Alphabet::NameSafe,
        3 => Alphabet::Printable,
        4 => Alphabet::Dangerous,
        _ => Alphabet::Any,
    })
}

fn text(u: &mut Unstructured, a: Alphabet, len: usize) -> Result<String> {
    let pick = |u: &mut Unstructured, set: &[u8]| -> Result<char> {
        Ok(set[u.choose_index(set.len())?] as char)
    };
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        let c = match a {
            Alphabet::Hex => pick(u, HEX)?,
            Alphabet::NameSafe => pick(u, NAME_SAFE)?,
            Alphabet::Dangerous => pick(u, DANGEROUS)?,
            Alphabet::Printable => u.int_in_range(0x20u8..=0x7e)? as char,
            Alphabet::Any => u.arbitrary::<char>()?,
        };
        s.push(c);
    }
    Ok(s)
}

/// The literal text a `^...$` pattern starts with (`^vol-(?:...)` gives `vol-`).
fn literal_prefix(pattern: &str) -> String {
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let lit: Vec<char> = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '/'))
        .collect();
    // A quantifier after the last literal applies to it alone: drop that character.
    let next = body.chars().nth(lit.len());
    let keep = match next {
        Some('?' | '*' | '+' | '{') => lit.len().saturating_sub(1),
        _ => lit.len(),
    };
    lit[..keep].iter().collect()
}

fn string_for(u: &mut Unstructured, a: &ArgSpec) -> Result<String> {
    if let Some(c) = &a.choices
        && !c.is_empty()
        && u.ratio(2u8, 3)?
    {
        return Ok(c[u.choose_index(c.len())?].clone());
    }
    let prefix = match &a.pattern {
        Some(p) if u.ratio(7u8, 8)? => literal_prefix(p.as_str()),
        _ => String::new(),
    };
    let alpha = alphabet(u)?;
    let len = match u.int_in_range(0u8..=5)? {
        0 => 8,
        1 => 17,
        2 => 12,
        3 => u.int_in_range(0usize..=3)?,
        4 => u.int_in_range(0usize..=64)?,
        _ => u.int_in_range(0usize..=1100)?,
    };
    Ok(prefix + &text(u, alpha, len)?)
}

fn typed_value(u: &mut Unstructured, a: &ArgSpec) -> Result<Value> {
    Ok(match a.kind {
        ArgKind::Environment => match u.int_in_range(0u8..=4)? {
            0 | 1 => Value::from(ENVIRONMENTS[0]),
            2 | 3 => Value::from(ENVIRONMENTS[1]),
            _ => Value::from(text(u, Alphabet::Printable, 8)?),
        },
        ArgKind::String => Value::from(string_for(u, a)?),
        ArgKind::Integer => {
            let (lo, hi) = (a.minimum.unwrap_or(-1000), a.maximum.unwrap_or(1000));
            let i = match u.int_in_range(0u8..=5)? {
                0..=2 if lo <= hi => u.int_in_range(lo..=hi)?,
                0..=2 => lo,
                3 => lo.saturating_sub(1),
                4 => hi.saturating_add(1),
                _ => u.arbitrary::<i64>()?,
            };
            Value::from(i)
        }
        ArgKind::Boolean => Value::from(u.arbitrary::<bool>()?),
        ArgKind::Timestamp => match u.int_in_range(0u8..=4)? {
            0 => Value::from(u.arbitrary::<i64>()?),
            1 => Value::from(u.int_in_range(0i64..=4_102_444_800_000)?),
            2 => Value::from(u.int_in_range(0u64..=4_102_444_800_000)?.to_string()),
            3 => Value::from(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                u.int_in_range(0u32..=10_000)?,
                u.int_in_range(0u32..=13)?,
                u.int_in_range(0u32..=32)?,
                u.int_in_range(0u32..=24)?,
                u.int_in_range(0u32..=60)?,
                u.int_in_range(0u32..=60)?,
            )),
            _ => Value::from(text(u, Alphabet::Printable, 24)?),
        },
        ArgKind::StringList => {
            let n = u.int_in_range(0usize..=a.max_items.unwrap_or(4) + 1)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(Value::from(string_for(u, a)?));
            }
            Value::Array(v)
        }
        ArgKind::StringMap => {
            let n = u.int_in_range(0usize..=a.max_items.unwrap_or(4) + 1)?;
            let mut m = Map::new();
            for _ in 0..n {
                let ka = alphabet(u)?;
                let klen = u.int_in_range(0usize..=20)?;
                let k = text(u, ka, klen)?;
                let va = alphabet(u)?;
                let vlen = u.int_in_range(0usize..=40)?;
                m.insert(k, Value::from(text(u, va, vlen)?));
            }
            Value::Object(m)
        }
    })
}

/// Any JSON value, at most `depth` levels deep.
pub fn any_value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let top = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0u8..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => any_number(u)?,
        3 | 4 => {
            let a = alphabet(u)?;
            let n = u.int_in_range(0usize..=24)?;
            Value::String(text(u, a, n)?)
        }
        5 => {
            let n = u.int_in_range(0usize..=4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(any_value(u, depth - 1)?);
            }
            Value::Array(v)
        }
        _ => {
            let n = u.int_in_range(0usize..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                let a = alphabet(u)?;
                let kl = u.int_in_range(0usize..=8)?;
                let k = text(u, a, kl)?;
                m.insert(k, any_value(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

/// A JSON number: a u64, an i64 or a finite f64.
pub fn any_number(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => Value::from(u.arbitrary::<u64>()?),
        1 => Value::from(u.arbitrary::<i64>()?),
        _ => Number::from_f64(u.arbitrary::<f64>()?)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    })
}
