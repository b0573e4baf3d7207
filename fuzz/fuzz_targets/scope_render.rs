//! For every call that validates, the session policy stays within the tool: its actions are
//! exactly the tool's `iam_actions` (sorted, deduplicated, no `*`), its resources exactly the
//! tool's templates filled with the environment and the validated values (no `*` but a
//! template's own `"*"` or a final `:*`), each resource argument's value appears verbatim, and
//! the JSON text sent to STS says the same, in the environment's region, with a matching hash.
#![no_main]

use std::collections::BTreeSet;

use airlock::catalogue::args::{Args, validate};
use airlock::policy::Environment;
use airlock::scope::{MAX_POLICY_CHARS, ScopeError, render};
use airlock_fuzz::{ENVIRONMENTS, decode_calls, environment};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The template filled by plain substitution, written independently of `scope::fill_arn`.
fn fill(tmpl: &str, env: &Environment, args: &Args) -> String {
    let mut out = tmpl
        .replace("${partition}", &env.partition)
        .replace("${region}", &env.region)
        .replace("${account}", &env.account);
    for (k, v) in args {
        if let Some(s) = v.as_str() {
            out = out.replace(&format!("${{{k}}}"), s);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    for (tool, input) in decode_calls(data) {
        let Some(aws) = tool.aws() else { continue };
        let Ok(args) = validate(&tool, &input, ENVIRONMENTS) else {
            continue;
        };
        let env_name = args
            .get("environment")
            .and_then(Value::as_str)
            .unwrap_or("staging");
        let env = environment(env_name);
        let sp = match render(&tool, &env, &args) {
            Ok(sp) => sp,
            Err(ScopeError::MissingArgument(a)) => {
                panic!(
                    "validated arguments of {} lack `{a}` for a resource template",
                    tool.name
                )
            }
            // Refusals (too large, a value an ARN cannot carry) are not output.
            Err(_) => continue,
        };

        // Actions: exactly the tool's, sorted and deduplicated, none a wildcard.
        let want: Vec<String> = aws
            .iam_actions
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(sp.actions, want);
        assert!(
            sp.actions
                .iter()
                .all(|a| !a.contains('*') && !a.contains('?'))
        );

        // Resources: exactly the filled templates.
        let want: Vec<String> = aws
            .resources
            .iter()
            .map(|t| {
                if t == "*" {
                    "*".to_string()
                } else {
                    fill(t, &env, &args)
                }
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(sp.resources, want, "args {args:?}");
        let star_template = aws.resources.iter().any(|t| t == "*");
        for r in &sp.resources {
            if r == "*" {
                assert!(star_template, "\"*\" from no \"*\" template");
                continue;
            }
            assert!(r.starts_with(&format!("arn:{}:", env.partition)), "{r}");
            let body = r.strip_suffix(":*").unwrap_or(r);
            assert!(
                !body.contains('*') && !body.contains('?'),
                "wildcard in {r}"
            );
            assert!(!body.contains("${"), "unfilled placeholder in {r}");
        }
        // Every resource argument a template uses appears verbatim in a resource.
        for a in tool.resource_arguments() {
            let placeholder = format!("${{{}}}", a.name);
            if !aws.resources.iter().any(|t| t.contains(&placeholder)) {
                continue;
            }
            let v = args[&a.name]
                .as_str()
                .expect("a resource argument in an ARN is a string");
            assert!(
                sp.resources.iter().any(|r| r.contains(v)),
                "{v:?} not in {:?}",
                sp.resources
            );
        }

        // The document itself.
        assert!(sp.json.chars().count() <= MAX_POLICY_CHARS);
        assert_eq!(sp.hash, hex::encode(Sha256::digest(sp.json.as_bytes())));
        let doc: Value = serde_json::from_str(&sp.json).expect("the session policy is JSON");
        let st = doc["Statement"].as_array().expect("Statement is a list");
        assert_eq!(st.len(), 1);
        assert_eq!(st[0]["Effect"], "Allow");
        assert_eq!(st[0]["Action"], json!(sp.actions));
        assert_eq!(st[0]["Resource"], json!(sp.resources));
        assert_eq!(
            st[0]["Condition"],
            json!({"StringEquals": {"aws:RequestedRegion": env.region}})
        );
        assert!(st[0].as_object().unwrap().keys().all(|k| {
            matches!(
                k.as_str(),
                "Sid" | "Effect" | "Action" | "Resource" | "Condition"
            )
        }));
    }
});
