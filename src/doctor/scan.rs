//! Control 1 of `airlock doctor`: credentials an agent could read. Walks the workspace (every
//! file, including git-ignored ones such as `.env`, but not build and dependency folders) and
//! the process environment, with the redactor's detectors plus kubeconfig files. Findings carry
//! a path, a line and a kind, never the secret itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::redact::{Redactor, SecretKind};

/// Folders that hold builds and dependencies, not the project's own files.
const SKIP_DIRS: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".cargo",
];
/// Larger files are not read (logs, dumps, artefacts).
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// Environment variables that hold a cloud or platform credential by their name alone.
const CREDENTIAL_VARS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
    ("AWS_SESSION_TOKEN", "aws_session_token"),
    ("AWS_SECURITY_TOKEN", "aws_session_token"),
    ("GITHUB_TOKEN", "github_token"),
    ("GH_TOKEN", "github_token"),
    ("GITLAB_TOKEN", "platform_token"),
    ("RAILWAY_TOKEN", "platform_token"),
    ("RAILWAY_API_TOKEN", "platform_token"),
    ("VERCEL_TOKEN", "platform_token"),
    ("FLY_API_TOKEN", "platform_token"),
    ("FLY_ACCESS_TOKEN", "platform_token"),
    ("RENDER_API_KEY", "platform_token"),
    ("NETLIFY_AUTH_TOKEN", "platform_token"),
    ("HEROKU_API_KEY", "platform_token"),
    ("DIGITALOCEAN_ACCESS_TOKEN", "platform_token"),
    ("CLOUDFLARE_API_TOKEN", "platform_token"),
    ("AZURE_CLIENT_SECRET", "platform_token"),
];

/// One credential found: where, and what kind. Never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Relative to the workspace, or `environment`.
    pub path: String,
    /// 1-based; 0 for an environment variable.
    pub line: usize,
    pub kind: String,
    /// The file is ignored by git (it is still readable by the agent).
    pub git_ignored: bool,
    /// A documentation example or placeholder (e.g. AWS's `AKIAIOSFODNN7EXAMPLE`), not a secret.
    pub example: bool,
    /// The variable's name, for the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// When `path` is a symbolic link to a file: the file it leads to (possibly outside the
    /// workspace; the agent reads it through the link all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_symlink: Option<String>,
}

/// What a workspace scan saw.
#[derive(Debug, Default, Serialize)]
pub struct Scan {
    pub findings: Vec<Finding>,
    pub files_scanned: usize,
    pub git_ignored_files: usize,
}

/// A PEM block with a real body: at least one whole line of base64 (not a header alone in a
/// string or a dictionary).
fn has_pem_body(text: &str) -> bool {
    text.lines().skip(1).any(|l| {
        let l = l.trim();
        l.len() >= 40
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    })
}

/// The kind reported for a redactor match, or `None` for what doctor does not report: the
/// redactor's catch-all `token = ...`/`password = ...` rules and bearer headers fire on code
/// and docs all the time; doctor reports only credentials with a recognisable shape.
fn kind_name(k: SecretKind, text: &str) -> Option<String> {
    use SecretKind::*;
    match k {
        AwsAccessKeyId | AwsSecretAccessKey | AwsSessionToken | PlatformToken => {
            Some(k.as_str().to_string())
        }
        ApiToken if text.starts_with("gh") || text.starts_with("github_pat_") => {
            Some("github_token".into())
        }
        ApiToken if text.starts_with("xox") => Some("slack_token".into()),
        ApiToken if text.starts_with("sk_live_") || text.starts_with("rk_live_") => {
            Some("stripe_key".into())
        }
        PrivateKey if !has_pem_body(text) => None,
        PrivateKey if text.contains("ENCRYPTED PRIVATE KEY") => {
            Some("encrypted_private_key".into())
        }
        PrivateKey => Some("private_key".into()),
        ApiToken | BearerToken | ConnectionStringPassword | GenericPassword => None,
    }
}

/// A documentation example or an obvious placeholder rather than a secret: AWS's published
/// examples end in `EXAMPLE`/`EXAMPLEKEY`; placeholders are runs of one character, `x`s, or
/// template syntax.
pub fn looks_like_example(secret: &str) -> bool {
    let s = secret.trim();
    let lower = s.to_ascii_lowercase();
    let body: Vec<char> = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    lower.contains("example")
        || lower.contains("xxxxxxxx")
        || lower.contains("placeholder")
        || lower.contains("changeme")
        || lower.contains("not-a-real")
        || lower.contains("dummy")
        || lower.contains("fake")
        || lower.contains("your_")
        || lower.contains("your-")
        || s.contains("${")
        || s.contains("{{")
        || s.starts_with('<')
        || body.windows(2).all(|w| w[0] == w[1])
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Credentials in one file's text: (line, kind, example), at most one per line.
pub fn scan_text(text: &str) -> Vec<(usize, String, bool)> {
    let mut out: Vec<(usize, String, bool)> = Vec::new();
    let mut lines = BTreeSet::new();
    // A kubeconfig: the credential lines of its users (or the file itself).
    let has_line = |want: &str| text.lines().any(|l| l.trim_end() == want);
    if has_line("kind: Config") && has_line("clusters:") && has_line("users:") {
        let mut found = false;
        for (i, l) in text.lines().enumerate() {
            let t = l.trim_start().trim_start_matches("- ");
            if [
                "client-key-data:",
                "client-certificate-data:",
                "token:",
                "password:",
                "auth-provider:",
                "exec:",
            ]
            .iter()
            .any(|k| t.starts_with(k))
            {
                let value = t.split_once(':').map(|x| x.1).unwrap_or_default();
                out.push((
                    i + 1,
                    "kubeconfig".into(),
                    looks_like_example(value) && !value.trim().is_empty(),
                ));
                lines.insert(i + 1);
                found = true;
            }
        }
        if !found && let Some(off) = text.find("kind: Config") {
            let l = line_of(text, off);
            out.push((l, "kubeconfig".into(), false));
            lines.insert(l);
        }
    }
    for (range, kind) in Redactor::global().find(text) {
        let secret = &text[range.clone()];
        let Some(name) = kind_name(kind, secret) else {
            continue;
        };
        let line = line_of(text, range.start);
        if lines.insert(line) {
            out.push((line, name, looks_like_example(secret)));
        }
    }
    out.sort();
    out
}

/// Every file under `root`, and every symbolic link under it that leads to a file (with where
/// it leads). Links to directories are not followed (no loops, no walking the whole disk
/// through a link to `/`).
fn walk(root: &Path, respect_gitignore: bool) -> impl Iterator<Item = (PathBuf, Option<PathBuf>)> {
    let mut b = ignore::WalkBuilder::new(root);
    b.standard_filters(false).hidden(false).follow_links(false);
    if respect_gitignore {
        b.git_ignore(true)
            .git_exclude(true)
            .require_git(false)
            .parents(true);
    }
    b.filter_entry(|e| {
        !(e.file_type().is_some_and(|t| t.is_dir())
            && e.depth() > 0
            && SKIP_DIRS.iter().any(|d| e.file_name() == *d))
    });
    b.build().filter_map(Result::ok).filter_map(|e| {
        let t = e.file_type()?;
        if t.is_file() {
            return Some((e.into_path(), None));
        }
        if t.is_symlink() && std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()) {
            let target = std::fs::canonicalize(e.path()).ok()?;
            return Some((e.into_path(), Some(target)));
        }
        None
    })
}

fn read_text(p: &Path) -> Option<String> {
    let meta = std::fs::metadata(p).ok()?;
    if meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(p).ok()?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Scan every file under `root` (git-ignored ones too, which are marked), skipping
/// [`SKIP_DIRS`], binary files and files over 2 MiB.
pub fn scan_dir(root: &Path) -> Scan {
    let tracked: BTreeSet<PathBuf> = walk(root, true).map(|(p, _)| p).collect();
    let mut scan = Scan::default();
    let mut all: Vec<(PathBuf, Option<PathBuf>)> = walk(root, false).collect();
    all.sort();
    for (p, target) in all {
        let Some(text) = read_text(&p) else { continue };
        scan.files_scanned += 1;
        let ignored = !tracked.contains(&p);
        if ignored {
            scan.git_ignored_files += 1;
        }
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        for (line, kind, example) in scan_text(&text) {
            scan.findings.push(Finding {
                path: rel.clone(),
                line,
                kind,
                git_ignored: ignored,
                example,
                variable: None,
                via_symlink: target.as_ref().map(|t| t.display().to_string()),
            });
        }
    }
    scan
}

/// Credentials in environment variables: by well-known name, by value shape, and
/// `KUBECONFIG` pointing at a file.
pub fn scan_env(vars: &[(String, String)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, value) in vars {
        if value.trim().is_empty() {
            continue;
        }
        let by_name = CREDENTIAL_VARS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.to_string());
        let kind = by_name.or_else(|| {
            if name == "KUBECONFIG" {
                return std::env::split_paths(value)
                    .any(|p| p.is_file())
                    .then(|| "kubeconfig".to_string());
            }
            let text = format!("{name}={value}");
            Redactor::global()
                .find(&text)
                .into_iter()
                .find_map(|(r, k)| kind_name(k, &text[r]))
        });
        if let Some(kind) = kind {
            out.push(Finding {
                path: "environment".into(),
                line: 0,
                kind,
                git_ignored: false,
                example: name != "KUBECONFIG" && looks_like_example(value),
                variable: Some(name.clone()),
                via_symlink: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_and_placeholders_are_not_secrets() {
        for s in [
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "xxxxxxxxxxxxxxxxxxxx",
            "${{ secrets.TOKEN }}",
            "<your token>",
            "AAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(looks_like_example(s), "{s}");
        }
        // Built at run time, so the repository holds no real-looking key.
        assert!(!looks_like_example(&format!("AKIA{}", "Z2".repeat(8))));
        assert!(!looks_like_example(&format!(
            "ghp_{}",
            "a8Kd93jfQ0".repeat(4)
        )));
    }

    #[test]
    fn one_finding_per_line_with_kinds() {
        let text = format!(
            "a=1\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nRAILWAY_TOKEN={}\n",
            uuid::Uuid::new_v4()
        );
        let got = scan_text(&text);
        assert_eq!(
            got,
            [
                (2, "aws_access_key_id".to_string(), true),
                (3, "platform_token".to_string(), false)
            ]
        );
        assert!(
            scan_text("password = \"hunter2\"\nAuthorization: Bearer abcdefghijkl\n").is_empty()
        );
    }
}
