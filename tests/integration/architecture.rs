//! The library's dependencies run one way: no import cycle between the top-level modules
//! (`engine` may use `queue`, never the other way round), nor between the files of one folder
//! (`approval::keys` and `approval::trust`). Read from the source: every `crate::` and
//! `super::` path outside comments is an edge to the module it names.

use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path of each library file (`src/queue/sqlite/rows.rs` -> `queue::sqlite::rows`).
fn modules() -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    let src = repo().join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // The binary's command line is not part of the library.
                if p != src.join("cli") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p == src.join("main.rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let mut parts: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            out.insert(parts, std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

/// The code of a file without its comments (doc links are not dependencies).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that follows `prefix` in `s`, with `{a, b::c}` groups expanded.
fn paths_after(s: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        expand(rest, &mut Vec::new(), &mut out);
    }
    out
}

/// Reads one path (or group) at the start of `s` after the segments in `base`.
fn expand(s: &str, base: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&inner[start..i], &mut base.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &mut base.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        if !base.is_empty() {
            out.push(base.clone());
        }
        return;
    }
    base.push(ident.clone());
    let after = &s[ident.len()..];
    match after.strip_prefix("::") {
        Some(more) => expand(more, base, out),
        None => out.push(base.clone()),
    }
}

/// The longest known module that `path` starts with.
fn resolve(path: &[String], known: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

/// Module -> the modules it uses.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let files = modules();
    let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut g = BTreeMap::new();
    for (m, text) in &files {
        let text = code(text);
        let mut deps = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            deps.insert(resolve(&p, &known));
        }
        // `super::` is relative to the parent (for a folder's mod.rs, to the folder's parent).
        let parent: Vec<String> = m[..m.len().saturating_sub(1)].to_vec();
        for p in paths_after(&text, "super::") {
            let mut full = parent.clone();
            let mut rest = p.as_slice();
            while rest.first().is_some_and(|s| s == "super") {
                full.pop();
                rest = &rest[1..];
            }
            full.extend(rest.iter().cloned());
            deps.insert(resolve(&full, &known));
        }
        deps.remove(m);
        deps.remove(&Vec::new());
        g.insert(m.clone(), deps);
    }
    g
}

/// A cycle among `nodes` under `edges`, if there is one.
fn cycle(nodes: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for (_, to) in edges.iter().filter(|(f, _)| f == n) {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    nodes
        .iter()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_depend_one_way() {
    let g = graph();
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    for (m, deps) in &g {
        let Some(top) = m.first() else { continue };
        nodes.insert(top.clone());
        for d in deps {
            if d[0] != *top {
                edges.insert((top.clone(), d[0].clone()));
            }
        }
    }
    assert!(nodes.len() > 10, "{nodes:?}");
    assert!(
        edges.contains(&("engine".to_string(), "queue".to_string())),
        "the graph reader missed an edge it must see: {edges:?}"
    );
    if let Some(c) = cycle(&nodes, &edges) {
        panic!("import cycle between modules: {}", c.join(" -> "));
    }
}

#[test]
fn the_files_of_a_folder_depend_one_way() {
    let g = graph();
    let parents: BTreeSet<Vec<String>> = g
        .keys()
        .filter(|m| m.len() > 1)
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for parent in parents {
        let children: Vec<&Vec<String>> = g
            .keys()
            .filter(|m| m.len() == parent.len() + 1 && m.starts_with(&parent))
            .collect();
        let nodes: BTreeSet<String> = children.iter().map(|m| m[parent.len()].clone()).collect();
        let mut edges = BTreeSet::new();
        for c in &children {
            // A child and everything below it count as that child.
            for (m, deps) in g.iter().filter(|(m, _)| m.starts_with(c)) {
                let _ = m;
                for d in deps {
                    if d.len() > parent.len()
                        && d.starts_with(&parent)
                        && d[parent.len()] != c[parent.len()]
                    {
                        edges.insert((c[parent.len()].clone(), d[parent.len()].clone()));
                    }
                }
            }
        }
        if let Some(cy) = cycle(&nodes, &edges) {
            panic!("import cycle in {}: {}", parent.join("::"), cy.join(" -> "));
        }
    }
}

#[test]
fn the_graph_reader_sees_groups_and_super_paths() {
    let mut out = Vec::new();
    expand(
        "{ebs::{self, COPY}, snapshot::Kind, Refuse};",
        &mut Vec::new(),
        &mut out,
    );
    let shown: Vec<String> = out.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        ["ebs::self", "ebs::COPY", "snapshot::Kind", "Refuse"]
    );
    assert!(Path::new(&repo().join("src/lib.rs")).exists());
}
