//! The call hash approvers sign: the same call with its argument objects' keys in another
//! order has the same canonical text and hash; a call that differs in any field (tool,
//! environment, account, region, resource ARN, or anything in the arguments) hashes
//! differently. Canonical text parses back to the same call.
#![no_main]

use airlock::queue::{Call, call_hash};
use airlock_fuzz::{any_number, any_value};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn string(u: &mut Unstructured) -> Result<String> {
    // Short strings, often ASCII, so that near-equal strings are common.
    if u.ratio(3u8, 4)? {
        let n = u.int_in_range(0usize..=6)?;
        (0..n)
            .map(|_| Ok(u.int_in_range(b'a'..=b'd')? as char))
            .collect()
    } else {
        u.arbitrary()
    }
}

fn call(u: &mut Unstructured) -> Result<Call> {
    Ok(Call {
        tool: string(u)?,
        environment: string(u)?,
        account: string(u)?,
        region: string(u)?,
        resource_arn: string(u)?,
        arguments: any_value(u, 3)?,
    })
}

/// The same value with every object's keys reinserted in another order.
fn reorder(v: &Value, u: &mut Unstructured) -> Result<Value> {
    Ok(match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            match u.int_in_range(0u8..=2)? {
                0 => entries.reverse(),
                1 => {
                    let n = entries.len().max(1);
                    entries.rotate_left(u.int_in_range(0..=n - 1)?);
                }
                _ => {
                    for i in (1..entries.len()).rev() {
                        let j = u.int_in_range(0..=i)?;
                        entries.swap(i, j);
                    }
                }
            }
            let mut out = Map::new();
            for (k, x) in entries {
                out.insert(k.clone(), reorder(x, u)?);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| reorder(x, u)).collect::<Result<_>>()?),
        other => other.clone(),
    })
}

/// Change one thing somewhere in `v`.
fn mutate(v: &mut Value, u: &mut Unstructured) -> Result<()> {
    match v {
        Value::Object(m) if !m.is_empty() && u.ratio(2u8, 3)? => {
            let i = u.choose_index(m.len())?;
            match u.int_in_range(0u8..=2)? {
                0 => {
                    let k = m.keys().nth(i).unwrap().clone();
                    m.shift_remove(&k);
                }
                1 => {
                    let k = m.keys().nth(i).unwrap().clone();
                    let x = m.shift_remove(&k).unwrap();
                    m.insert(format!("{k}_"), x);
                }
                _ => mutate(m.values_mut().nth(i).unwrap(), u)?,
            }
        }
        Value::Object(m) => {
            m.insert(string(u)?, any_value(u, 1)?);
        }
        Value::Array(a) if !a.is_empty() && u.ratio(2u8, 3)? => {
            let i = u.choose_index(a.len())?;
            if u.arbitrary()? {
                a.remove(i);
            } else {
                mutate(&mut a[i], u)?;
            }
        }
        Value::Array(a) => a.push(any_value(u, 1)?),
        Value::String(s) => match u.int_in_range(0u8..=2)? {
            0 => s.push(u.arbitrary()?),
            1 => *v = Value::from(string(u)?),
            _ => *v = any_number(u)?,
        },
        other => {
            *other = match u.int_in_range(0u8..=3)? {
                0 => Value::Null,
                1 => Value::Bool(u.arbitrary()?),
                2 => any_number(u)?,
                _ => Value::String(string(u)?),
            }
        }
    }
    Ok(())
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let a = call(u)?;
    let ca = a.canonical();
    let ha = call_hash(&ca);

    // Same call, keys in another order: same text, same hash.
    let b = Call {
        arguments: reorder(&a.arguments, u)?,
        ..a.clone()
    };
    assert_eq!(a, b);
    assert_eq!(ca, b.canonical());
    assert_eq!(ha, call_hash(&b.canonical()));
    assert_eq!(ca, a.canonical(), "canonical() is not deterministic");

    // The canonical text is the call (floats aside: serde_json parses them to the nearest
    // double only with its `float_roundtrip` feature, which airlock does not enable).
    let back: Call = serde_json::from_str(&ca).expect("canonical text parses as a Call");
    if !has_float(&a.arguments) {
        assert_eq!(back, a, "canonical text does not parse back to the call");
        assert_eq!(back.canonical(), ca, "canonical text does not round-trip");
    }

    // One field changed: a different hash.
    let mut c = a.clone();
    match u.int_in_range(0u8..=5)? {
        0 => c.tool.push(u.arbitrary()?),
        1 => c.environment = string(u)?,
        2 => c.account.push(u.arbitrary()?),
        3 => c.region = string(u)?,
        4 => c.resource_arn = string(u)?,
        _ => mutate(&mut c.arguments, u)?,
    }
    if c != a {
        assert_ne!(ha, call_hash(&c.canonical()), "{a:?} and {c:?} hash alike");
    }

    // Two independent calls: equal hashes only for equal calls.
    let d = call(u)?;
    if call_hash(&d.canonical()) == ha {
        assert_eq!(d, a, "different calls hash alike");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
