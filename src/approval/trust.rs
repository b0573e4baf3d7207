//! The approvers' trust file: a TOML list of approver names and public keys, kept outside the
//! workspace, that decides whose signatures can approve a queued request.

use super::keys::{PublicKey, check_name};
use crate::config::source::{SourceError, SourceErrors, SourceFile};
use serde_spanned::Spanned;
use std::path::{Path, PathBuf};

/// The approvers' trust file (TOML), e.g.
///
/// ```toml
/// [[approver]]
/// name = "alice"
/// public_key = "ed25519:...."
/// ```
///
/// Unknown fields, malformed keys, and repeated names or keys are errors. A file with no
/// approvers is valid and trusts nobody.
#[derive(Debug, Clone)]
pub struct TrustFile {
    pub path: PathBuf,
    pub approvers: Vec<TrustedApprover>,
}

/// One trusted approver: a name for people and the key that proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedApprover {
    pub name: String,
    pub key: PublicKey,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    approver: Vec<RawApprover>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprover {
    name: Spanned<String>,
    public_key: Spanned<String>,
}

impl TrustFile {
    /// Reads and parses the trust file at `path`; a missing or unreadable file is an error at
    /// `path:1:1`.
    pub fn load(path: &Path) -> Result<Self, SourceErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SourceFile::new(path, "").error(
                None,
                format!(
                    "cannot read the trust file: {e}; create it with the public keys printed by `airlock approver init`"
                ),
            )
        })?;
        Self::parse(&SourceFile::new(path, text))
    }

    /// Parses a trust file, reporting every problem found as `path:line:col: message`.
    pub fn parse(f: &SourceFile) -> Result<Self, SourceErrors> {
        let raw: RawFile = f.parse_toml()?;
        let mut errors: Vec<SourceError> = Vec::new();
        let mut approvers: Vec<TrustedApprover> = Vec::new();
        let mut names: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
        for a in &raw.approver {
            let name = a.name.get_ref().as_str();
            match names.iter().find(|(n, _)| *n == name) {
                Some((_, first)) => {
                    let (line, _) = f.line_col(first.start);
                    errors.push(f.error(
                        Some(a.name.span()),
                        format!("duplicate approver name {name:?} (first at line {line})"),
                    ));
                }
                None => names.push((name, a.name.span())),
            }
            if let Err(e) = check_name(name) {
                errors.push(f.error(Some(a.name.span()), e.to_string()));
            }
            match a.public_key.get_ref().parse::<PublicKey>() {
                Err(e) => errors.push(f.error(Some(a.public_key.span()), e.to_string())),
                Ok(key) => match approvers.iter().find(|t| t.key == key) {
                    Some(t) => errors.push(f.error(
                        Some(a.public_key.span()),
                        format!(
                            "duplicate public key: already listed for approver {:?}",
                            t.name
                        ),
                    )),
                    None => approvers.push(TrustedApprover {
                        name: name.to_string(),
                        key,
                    }),
                },
            }
        }
        if !errors.is_empty() {
            return Err(SourceErrors(errors));
        }
        Ok(TrustFile {
            path: f.path.clone(),
            approvers,
        })
    }

    /// The approver who holds `key`, if trusted.
    pub fn find(&self, key: &PublicKey) -> Option<&TrustedApprover> {
        self.approvers.iter().find(|a| &a.key == key)
    }
}

/// Where the trust file is looked for: `$XDG_CONFIG_HOME/airlock/approvers.toml`, else
/// `$HOME/.config/airlock/approvers.toml`.
pub fn default_trust_path() -> PathBuf {
    super::config_dir().join("approvers.toml")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ApproverKey;

    fn parse(text: &str) -> Result<TrustFile, SourceErrors> {
        TrustFile::parse(&SourceFile::new("approvers.toml", text))
    }

    fn at(e: &SourceErrors) -> Vec<(usize, usize)> {
        e.0.iter().map(|e| (e.line, e.col)).collect()
    }

    #[test]
    fn parses_and_finds() {
        let (a, b) = (
            ApproverKey::generate("alice").public(),
            ApproverKey::generate("bob").public(),
        );
        let t = parse(&format!(
            "[[approver]]\nname = \"alice\"\npublic_key = \"{a}\"\n\n[[approver]]\nname = \"bob\"\npublic_key = \"{b}\"\n"
        ))
        .unwrap();
        assert_eq!(t.find(&b).unwrap().name, "bob");
        assert!(t.find(&ApproverKey::generate("eve").public()).is_none());
        assert!(parse("").unwrap().approvers.is_empty());
    }

    #[test]
    fn errors_carry_line_and_column() {
        let k = ApproverKey::generate("a").public();
        let e = parse(&format!(
            "[[approver]]\nname = \"alice\"\npublic_key = \"{k}\"\ncolour = \"red\"\n"
        ))
        .unwrap_err();
        assert_eq!(at(&e), [(4, 1)], "{e}");
        let e =
            parse("[[approver]]\nname = \"alice\"\npublic_key = \"ed25519:AAAA\"\n").unwrap_err();
        assert_eq!(at(&e), [(3, 14)], "{e}");
        assert!(
            e.to_string()
                .starts_with("approvers.toml:3:14: bad public key:"),
            "{e}"
        );
        let k2 = ApproverKey::generate("b").public();
        let e = parse(&format!(
            "[[approver]]\nname = \"alice\"\npublic_key = \"{k}\"\n[[approver]]\nname = \"alice\"\npublic_key = \"{k2}\"\n[[approver]]\nname = \"carol\"\npublic_key = \"{k}\"\n"
        ))
        .unwrap_err();
        assert_eq!(at(&e), [(5, 8), (9, 14)], "{e}");
        assert!(
            e.0[0].message.contains("duplicate approver name")
                && e.0[1].message.contains("\"alice\""),
            "{e}"
        );
        let e = parse("[[approver]]\nname = \"../x\"\npublic_key = \"ed25519:\"\n").unwrap_err();
        assert_eq!(at(&e), [(2, 8), (3, 14)], "{e}");
    }

    #[test]
    fn missing_file_is_an_error_at_1_1() {
        let dir = tempfile::tempdir().unwrap();
        let e = TrustFile::load(&dir.path().join("approvers.toml")).unwrap_err();
        assert_eq!(at(&e), [(1, 1)]);
        assert!(e.to_string().contains("airlock approver init"), "{e}");
    }
}
