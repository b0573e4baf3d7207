//! Tool-file parsing never panics, whatever the text. A tool that parses keeps the catalogue's
//! safety rules: a valid name, no wildcard IAM action, resources that are either `"*"` alone
//! (read tools, with a reason) or `arn:${partition}:` templates, list and map arguments bounded,
//! resource arguments patterned; its JSON Schema serialises; validating an empty call (defaults,
//! time range) and rendering its session policy do not panic. Errors point inside the file.
#![no_main]

use airlock::catalogue::args::validate;
use airlock::catalogue::{ArgKind, Risk, parse_tool};
use airlock::config::source::SourceFile;
use airlock_fuzz::{ENVIRONMENTS, arguments_for, environment};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let f = SourceFile::new("tools/x.toml", text.as_ref());
    match parse_tool(&f) {
        Err(errs) => {
            assert!(!errs.0.is_empty(), "an error result with no error");
            let lines = text.split('\n').count();
            for e in &errs.0 {
                assert!(e.line >= 1 && e.col >= 1, "{e}");
                assert!(e.line <= lines, "{e} is past the end ({lines} lines)");
            }
        }
        Ok(t) => {
            assert!(!t.name.is_empty() && t.name.len() <= 64, "{}", t.name);
            assert!(
                t.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            for a in &t.arguments {
                if matches!(a.kind, ArgKind::StringList | ArgKind::StringMap) {
                    assert!(a.max_items.is_some(), "unbounded list `{}`", a.name);
                }
                if a.resource {
                    assert!(a.pattern.is_some(), "resource `{}` has no pattern", a.name);
                }
            }
            if let Some(aws) = t.aws() {
                assert!(!aws.iam_actions.is_empty());
                for act in &aws.iam_actions {
                    assert!(
                        !act.contains('*') && !act.contains('?'),
                        "wildcard action {act}"
                    );
                    assert!(act.contains(':'), "{act}");
                }
                assert!(!aws.resources.is_empty());
                if aws.resources.iter().any(|r| r == "*") {
                    assert_eq!(aws.resources.len(), 1, "\"*\" mixed with templates");
                    assert_eq!(t.risk, Risk::Read, "a non-read tool on \"*\"");
                    assert!(
                        aws.wildcard_reason
                            .as_deref()
                            .is_some_and(|w| !w.trim().is_empty())
                    );
                } else {
                    for r in &aws.resources {
                        assert!(r.starts_with("arn:${partition}:"), "{r}");
                        let body = r.strip_suffix(":*").unwrap_or(r);
                        assert!(
                            !body.contains('*') && !body.contains('?'),
                            "wildcard in {r}"
                        );
                    }
                }
            }
            if t.risk == Risk::Destructive {
                assert_eq!(t.resource_arguments().count(), 1);
                assert!(t.describe.is_some() && t.backup.is_some());
            }
            serde_json::to_string(t.input_schema.as_ref()).expect("the schema serialises");
            // A tool that loads can be called: validating a call (its defaults, its time range)
            // and rendering the session policy must not panic either. Calls: no arguments;
            // only the environment; values built from the same bytes.
            let mut env_only = Map::new();
            for a in t
                .arguments
                .iter()
                .filter(|a| a.kind == ArgKind::Environment)
            {
                env_only.insert(a.name.clone(), Value::from(ENVIRONMENTS[0]));
            }
            let built = arguments_for(&mut Unstructured::new(data), &t).unwrap_or_default();
            for input in [Map::new(), env_only, built] {
                if let Ok(args) = validate(&t, &input, ENVIRONMENTS) {
                    let _ = airlock::scope::render(&t, &environment(ENVIRONMENTS[0]), &args);
                }
            }
        }
    }
});
