//! policy.toml parsing never panics, whatever the text. Errors point inside the file
//! (line >= 1, col >= 1, not past the last line). A policy that loads can be decided on and
//! described (`describe_access`) for every tool and environment without panicking.
#![no_main]

use airlock::policy::access::describe;
use airlock::policy::{CallFacts, Policy};
use airlock::config::source::SourceFile;
use airlock_fuzz::catalogue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let f = SourceFile::new("policy.toml", text.as_ref());
    let cat = catalogue();
    match Policy::parse(&f, Some(cat)) {
        Err(errs) => {
            assert!(!errs.0.is_empty(), "an error result with no error");
            let lines = text.split('\n').count();
            for e in &errs.0 {
                assert!(e.line >= 1 && e.col >= 1, "{e}");
                assert!(e.line <= lines, "{e} is past the end ({lines} lines)");
                assert!(e.to_string().starts_with("policy.toml:"), "{e}");
            }
        }
        Ok(p) => {
            // Resource ids to decide on: the protected ids, the rules' globs as literal text,
            // and one plain id.
            let mut ids: Vec<String> = p.protected_ids.clone();
            for r in &p.rules {
                for g in r.resources.iter().flatten() {
                    ids.push(g.text.clone());
                }
            }
            ids.push("vol-0123456789abcdef0".into());
            let mut envs: Vec<String> = p.environments.keys().cloned().collect();
            envs.push("nowhere".into());
            for tool in cat.tools() {
                for env in &envs {
                    for res in [&[][..], &ids[..1.min(ids.len())], &ids[..]] {
                        let v = p.decide(&CallFacts {
                            tool: &tool.name,
                            risk: tool.risk,
                            environment: env,
                            resources: res,
                        });
                        assert!(!v.reason.is_empty());
                    }
                }
            }
            let _ = describe(&p, cat, None);
        }
    }
});
