//! Argument validation never panics, for every built-in tool and any JSON object (a JSON input
//! is tried against every tool; any other input builds typed values for one tool, see
//! `airlock_fuzz::decode_calls`). Validated arguments name only declared arguments, include
//! every required one, and name only known environments.
#![no_main]

use airlock::catalogue::ArgKind;
use airlock::catalogue::args::validate;
use airlock_fuzz::{ENVIRONMENTS, decode_calls};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (tool, input) in decode_calls(data) {
        let Ok(args) = validate(&tool, &input, ENVIRONMENTS) else {
            continue;
        };
        for k in args.keys() {
            assert!(
                tool.argument(k).is_some(),
                "`{k}` is not an argument of {}",
                tool.name
            );
        }
        for a in &tool.arguments {
            if a.required {
                assert!(args.contains_key(&a.name), "required `{}` missing", a.name);
            }
            if a.kind == ArgKind::Environment
                && let Some(v) = args.get(&a.name)
            {
                let v = v.as_str().expect("an environment is a string");
                assert!(
                    ENVIRONMENTS.contains(&v),
                    "unknown environment {v:?} accepted"
                );
            }
        }
        if let Some(tr) = &tool.time_range {
            let start = args[&tr.start].as_i64().expect("start is epoch ms");
            let end = args[&tr.end].as_i64().expect("end is epoch ms");
            assert!(start < end && (end - start) as u128 <= tr.max_span.as_millis());
        }
    }
});
