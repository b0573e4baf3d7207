//! Signed policies: an approver signs the hash of `policy.toml` and of every tool file it
//! enables, and airlock honours a policy for destructive work only while that hash carries a
//! signature by an approver in the trust file. An agent that edits the policy or a tool file
//! therefore makes the policy unsigned, never more permissive.
//!
//! What is signed is a [`Manifest`], written in a canonical text form:
//!
//! ```text
//! airlock-policy-manifest-v1
//! policy <sha256 of policy.toml's bytes>
//! tool <name> <sha256 of the tool file's bytes>     (one line per enabled tool, sorted by name)
//! ```
//!
//! A tool is *enabled* when an `allow` or `approve` rule names it (or names `"*"`), or when it
//! is one of the always-available local tools (`describe_access`, `get_request`,
//! `cancel_request`). The manifest hash is the SHA-256 of that text. An approver signs
//! `airlock-policy-signature-v1\nmanifest_hash=<hash>\nsigned_at_ms=<ms>\n` with their Ed25519
//! key; signatures live in `<policy file>.sig` (TOML, see [`PolicySignature`]) next to the
//! policy. Anyone can delete or edit that file: that only makes the policy unsigned, because a
//! signature counts only when it verifies against a key in the trust file, which lives outside
//! the workspace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::approval::trust::TrustFile;
use crate::approval::{ApproverKey, PublicKey, verify_message};
use crate::catalogue::{Catalogue, Handler, ToolSpec};
use crate::policy::{Decision, Policy, names_match};
use crate::timefmt::format_ms;

const MANIFEST_HEADER: &str = "airlock-policy-manifest-v1";
const CLAIM_HEADER: &str = "airlock-policy-signature-v1";

/// What a policy signature covers: the policy file's hash and each enabled tool file's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Hex SHA-256 of the policy file's bytes (the same value as [`Policy::hash`]).
    pub policy_sha256: String,
    /// Enabled tool name -> hex SHA-256 of its file's bytes.
    pub tools: BTreeMap<String, String>,
}

/// The tools a policy enables: those an `allow` or `approve` rule names (or `"*"`), plus the
/// local tools that are always available.
pub fn enabled_tools<'a>(policy: &Policy, catalogue: &'a Catalogue) -> Vec<&'a Arc<ToolSpec>> {
    catalogue
        .tools()
        .filter(|t| {
            !matches!(t.handler, Handler::Aws(_))
                || policy
                    .rules
                    .iter()
                    .any(|r| r.decision != Decision::Deny && names_match(&r.tools, &t.name))
        })
        .collect()
}

impl Manifest {
    /// The manifest of a loaded policy and catalogue.
    pub fn of(policy: &Policy, catalogue: &Catalogue) -> Self {
        let tools = enabled_tools(policy, catalogue)
            .into_iter()
            .map(|t| {
                (
                    t.name.clone(),
                    catalogue
                        .file_sha256(&t.name)
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        Self {
            policy_sha256: policy.hash.clone(),
            tools,
        }
    }

    /// The canonical text (see the module documentation). Tool names are checked by the
    /// catalogue (letters, digits, `_`), so no name can break a line.
    pub fn text(&self) -> String {
        let mut s = format!("{MANIFEST_HEADER}\npolicy {}\n", self.policy_sha256);
        for (name, sha) in &self.tools {
            s.push_str(&format!("tool {name} {sha}\n"));
        }
        s
    }

    /// Hex SHA-256 of [`Self::text`]: the value approvers sign.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.text().as_bytes()))
    }

    /// Reads [`Self::text`] back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != MANIFEST_HEADER {
            return None;
        }
        let policy_sha256 = lines.next()?.strip_prefix("policy ")?.to_string();
        let mut tools = BTreeMap::new();
        for l in lines {
            let (name, sha) = l.strip_prefix("tool ")?.split_once(' ')?;
            tools.insert(name.to_string(), sha.to_string());
        }
        let m = Self {
            policy_sha256,
            tools,
        };
        (m.text() == text).then_some(m)
    }

    /// What differs in `self` compared with an earlier manifest, in words.
    pub fn changes_since(&self, old: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        if self.policy_sha256 != old.policy_sha256 {
            out.push("the policy file changed".to_string());
        }
        for (name, sha) in &self.tools {
            match old.tools.get(name) {
                None => out.push(format!("tool `{name}` is newly enabled")),
                Some(o) if o != sha => out.push(format!("tool `{name}`'s file changed")),
                Some(_) => {}
            }
        }
        for name in old.tools.keys() {
            if !self.tools.contains_key(name) {
                out.push(format!("tool `{name}` is no longer enabled"));
            }
        }
        out
    }
}

/// Where the signatures of `policy_path` live: the same path with `.sig` appended
/// (`policy.toml.sig`).
pub fn signature_path(policy_path: &Path) -> PathBuf {
    let mut s = policy_path.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// One approver's signature over a manifest hash, as stored in `policy.toml.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySignature {
    /// The approver's name when they signed (the trust file's name is what is reported).
    pub signer: String,
    /// `ed25519:<base64>`, as in the trust file.
    pub public_key: String,
    /// The key's fingerprint, for people (not trusted: recomputed from `public_key`).
    pub fingerprint: String,
    pub manifest_hash: String,
    /// When, for people (`signed_at_ms` is what is signed).
    pub signed_at: String,
    pub signed_at_ms: i64,
    /// The manifest text that was signed, so a later status can say what changed since.
    pub manifest: String,
    /// Standard base64 of the Ed25519 signature over the claim.
    pub signature: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SigFile {
    #[serde(default)]
    signature: Vec<PolicySignature>,
}

/// The exact bytes signed: domain-separated, one `name=value` line per field.
fn claim_message(manifest_hash: &str, signed_at_ms: i64) -> Vec<u8> {
    format!("{CLAIM_HEADER}\nmanifest_hash={manifest_hash}\nsigned_at_ms={signed_at_ms}\n")
        .into_bytes()
}

impl PolicySignature {
    /// `key`'s signature over `manifest`, made at `now_ms`.
    pub fn sign(key: &ApproverKey, manifest: &Manifest, now_ms: i64) -> Self {
        let hash = manifest.hash();
        Self {
            signer: key.name().to_string(),
            public_key: key.public().to_string(),
            fingerprint: key.public().fingerprint(),
            signature: key.sign_message(&claim_message(&hash, now_ms)),
            manifest_hash: hash,
            signed_at: format_ms(now_ms),
            signed_at_ms: now_ms,
            manifest: manifest.text(),
        }
    }

    /// The key, if the signature verifies for its own manifest hash and the stored manifest
    /// text hashes to that value.
    fn verified_key(&self) -> Result<PublicKey, String> {
        let key: PublicKey = self.public_key.parse().map_err(|e| format!("{e}"))?;
        verify_message(
            &key,
            &claim_message(&self.manifest_hash, self.signed_at_ms),
            &self.signature,
        )
        .map_err(|e| e.to_string())?;
        if hex::encode(Sha256::digest(self.manifest.as_bytes())) != self.manifest_hash {
            return Err("its manifest text does not match its hash".into());
        }
        Ok(key)
    }
}

/// The signatures in `path`; `Ok(None)` when there is no such file.
pub fn read_signatures(path: &Path) -> Result<Option<Vec<PolicySignature>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let f: SigFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| crate::config::source::SourceFile::new(path, text.as_str()).line_col(s.start))
            .unwrap_or((1, 1));
        format!(
            "{}:{}:{}: not a policy signature file ({}); delete it and sign again with `airlock policy sign`",
            path.display(),
            at.0,
            at.1,
            e.message()
        )
    })?;
    Ok(Some(f.signature))
}

/// Adds `sig` to the signature file at `path`: keeps other keys' signatures of the same
/// manifest, drops signatures of other manifests (they are superseded) and this key's earlier
/// one. Written to a temporary file and renamed, so a reader never sees half a file.
pub fn write_signature(path: &Path, sig: &PolicySignature) -> Result<(), String> {
    let mut all = read_signatures(path)
        .unwrap_or_default()
        .unwrap_or_default();
    all.retain(|s| s.manifest_hash == sig.manifest_hash && s.public_key != sig.public_key);
    all.push(sig.clone());
    let body = toml::to_string(&SigFile { signature: all }).map_err(|e| e.to_string())?;
    let text = format!(
        "# airlock policy signatures (written by `airlock policy sign`; see docs/signed-policy.md).\n# Editing or deleting this file can only make the policy unsigned.\n\n{body}"
    );
    let tmp = signature_path(&path.with_extension("tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: cannot write: {e}", path.display())
        })
}

/// Someone whose signature the trust file honours.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Signer {
    pub name: String,
    pub fingerprint: String,
    pub signed_at: String,
}

/// Whether a policy is signed, by whom, and if not, why and what changed since it last was.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub signed: bool,
    pub manifest_hash: String,
    pub policy_sha256: String,
    pub signature_file: String,
    pub trust_file: String,
    /// Trusted approvers whose signature covers the current manifest.
    pub signed_by: Vec<Signer>,
    /// The newest of those signatures: (signed_at_ms, approver name). What rollback protection
    /// compares (see [`Integrity::check_fresh`]).
    #[serde(skip)]
    pub newest: Option<(i64, String)>,
    /// Why the policy is not honoured (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What changed since the last manifest a trusted approver signed (or since load).
    pub changes: Vec<String>,
    /// Valid signatures of the current manifest by keys that are not in the trust file.
    pub untrusted_signers: Vec<String>,
    /// Signatures that do not verify at all (edited, forged or damaged).
    pub bad_signatures: Vec<String>,
}

/// The status of `manifest` given the signature file and the trust file (or why it could not
/// be read).
pub fn status(
    manifest: &Manifest,
    sig_path: &Path,
    trust: Result<&TrustFile, String>,
    trust_path: &Path,
) -> Status {
    let hash = manifest.hash();
    let mut st = Status {
        signed: false,
        manifest_hash: hash.clone(),
        policy_sha256: manifest.policy_sha256.clone(),
        signature_file: sig_path.display().to_string(),
        trust_file: trust_path.display().to_string(),
        signed_by: Vec::new(),
        newest: None,
        problem: None,
        changes: Vec::new(),
        untrusted_signers: Vec::new(),
        bad_signatures: Vec::new(),
    };
    let mut problems = Vec::new();
    let trust = match trust {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!(
                "the trust file cannot be read ({e}); only approvers listed there can sign"
            ));
            None
        }
    };
    let sigs = match read_signatures(sig_path) {
        Ok(Some(s)) => s,
        Ok(None) => {
            problems.push(format!(
                "it has never been signed (there is no {})",
                sig_path.display()
            ));
            Vec::new()
        }
        Err(e) => {
            problems.push(e);
            Vec::new()
        }
    };
    let mut last_trusted: Option<(&PolicySignature, String)> = None;
    for s in &sigs {
        let key = match s.verified_key() {
            Ok(k) => k,
            Err(e) => {
                st.bad_signatures
                    .push(format!("signature by {:?} does not verify: {e}", s.signer));
                continue;
            }
        };
        let trusted = trust.and_then(|t| t.find(&key));
        match trusted {
            Some(t) if s.manifest_hash == hash => {
                if st
                    .newest
                    .as_ref()
                    .is_none_or(|(at, _)| *at < s.signed_at_ms)
                {
                    st.newest = Some((s.signed_at_ms, t.name.clone()));
                }
                st.signed_by.push(Signer {
                    name: t.name.clone(),
                    fingerprint: key.fingerprint(),
                    signed_at: s.signed_at.clone(),
                })
            }
            Some(t)
                if last_trusted
                    .as_ref()
                    .is_none_or(|(l, _)| l.signed_at_ms < s.signed_at_ms) =>
            {
                last_trusted = Some((s, t.name.clone()));
            }
            Some(_) => {}
            None if s.manifest_hash == hash => {
                st.untrusted_signers
                    .push(format!("{} ({})", s.signer, key.fingerprint()))
            }
            None => {}
        }
    }
    st.signed = !st.signed_by.is_empty() && trust.is_some();
    if st.signed {
        return st;
    }
    if let Some((s, name)) = last_trusted
        && let Some(old) = Manifest::parse(&s.manifest)
    {
        st.changes = manifest.changes_since(&old);
        problems.push(format!(
            "it changed since {name} signed it at {} ({})",
            s.signed_at,
            st.changes.join("; ")
        ));
    }
    if !st.untrusted_signers.is_empty() {
        problems.push(format!(
            "it is signed only by keys that are not in the trust file {}: {}",
            trust_path.display(),
            st.untrusted_signers.join(", ")
        ));
    }
    if !st.bad_signatures.is_empty() {
        problems.push(st.bad_signatures.join("; "));
    }
    if problems.is_empty() {
        problems.push(format!(
            "{} holds no signature of the current policy by a trusted approver",
            sig_path.display()
        ));
    }
    st.problem = Some(problems.join("; "));
    st
}

/// The check `airlock serve` and the executor run before destructive work: is the policy *as
/// this process loaded it* signed by a trusted approver now, and are the files on disk still
/// the ones it loaded? The signature and trust files are read again on every check (so a
/// re-sign is picked up without a restart); the policy is not reloaded (a process never
/// switches policy under a request it is handling).
#[derive(Debug, Clone)]
pub struct Integrity {
    pub manifest: Manifest,
    policy_path: PathBuf,
    /// Enabled tools read from a tools folder: (name, file path). Empty for built-in tools.
    tool_files: Vec<(String, PathBuf)>,
    sig_path: PathBuf,
    trust_path: PathBuf,
}

impl Integrity {
    pub fn new(policy: &Policy, catalogue: &Catalogue, trust_path: &Path) -> Self {
        let tool_files = if catalogue.is_builtin() {
            Vec::new()
        } else {
            enabled_tools(policy, catalogue)
                .into_iter()
                .map(|t| (t.name.clone(), t.path.clone()))
                .collect()
        };
        Self {
            manifest: Manifest::of(policy, catalogue),
            policy_path: policy.path.clone(),
            tool_files,
            sig_path: signature_path(&policy.path),
            trust_path: trust_path.to_path_buf(),
        }
    }

    /// The files that differ on disk from what was loaded.
    fn drift(&self) -> Vec<String> {
        let sha = |p: &Path| {
            std::fs::read(p)
                .ok()
                .map(|b| hex::encode(Sha256::digest(&b)))
        };
        let mut out = Vec::new();
        if sha(&self.policy_path).as_deref() != Some(self.manifest.policy_sha256.as_str()) {
            out.push(format!(
                "{} changed on disk since this process loaded it",
                self.policy_path.display()
            ));
        }
        for (name, path) in &self.tool_files {
            if sha(path).as_deref() != self.manifest.tools.get(name).map(String::as_str) {
                out.push(format!(
                    "tool file {} changed on disk since this process loaded it",
                    path.display()
                ));
            }
        }
        out
    }

    /// The status now. A loaded policy whose files changed on disk is not honoured even if
    /// the loaded version is signed: restart the process after the change is signed.
    pub fn check(&self) -> Status {
        let trust = TrustFile::load(&self.trust_path).map_err(|e| e.to_string());
        let mut st = status(
            &self.manifest,
            &self.sig_path,
            trust.as_ref().map_err(Clone::clone),
            &self.trust_path,
        );
        let drift = self.drift();
        if !drift.is_empty() {
            st.signed = false;
            let mut p = format!(
                "{}; restart this process once a human has reviewed and signed the change",
                drift.join("; ")
            );
            if let Some(old) = st.problem.take() {
                p = format!("{p}; also: {old}");
            }
            st.problem = Some(p);
            st.changes.extend(drift);
        }
        st
    }
}

/// Where the newest trusted signature of each policy file honoured so far is remembered (the
/// queue, shared by every airlock process of a deployment): rollback protection.
pub trait SignatureMarks: Sync {
    /// Record that signature `h` of the policy file `policy` (its [`policy_key`]) is about to
    /// be honoured. When a newer signature of that file was honoured before, returns it
    /// (signed_at_ms, signer) and records nothing: honouring this one would be a rollback.
    fn note<'a>(&'a self, policy: &'a str, h: &'a Honoured) -> Noted<'a>;
}

/// What [`SignatureMarks::note`] answers.
pub type Noted<'a> = crate::BoxFuture<'a, Result<Option<(i64, String)>, String>>;

/// A signature about to be honoured: when, by whom, over which manifest.
#[derive(Debug, Clone)]
pub struct Honoured {
    pub signed_at_ms: i64,
    pub signer: String,
    pub manifest_hash: String,
}

impl Integrity {
    /// [`Self::check`], plus rollback protection: a signed policy is honoured only if its
    /// newest trusted signature is not older than the newest trusted signature of this policy
    /// file recorded in `marks` as honoured (by this or any other airlock process using the
    /// same queue). Honouring a newer signature records it. Restoring an older `policy.toml`
    /// together with its old `policy.toml.sig` therefore makes the policy unsigned; signing
    /// the old content again makes a new, newer signature.
    pub async fn check_fresh(&self, marks: &dyn SignatureMarks) -> Status {
        let mut st = self.check();
        let Some((at, by)) = st.newest.clone().filter(|_| st.signed) else {
            return st;
        };
        let key = policy_key(&self.policy_path);
        let h = Honoured {
            signed_at_ms: at,
            signer: by,
            manifest_hash: st.manifest_hash.clone(),
        };
        match marks.note(&key, &h).await {
            Ok(None) => {}
            Ok(Some(newer)) => refuse_rollback(&mut st, &self.policy_path, Some(newer)),
            Err(e) => {
                st.signed = false;
                st.problem = Some(format!(
                    "the queue cannot confirm that this signature is not a rollback to an older signed policy ({e})"
                ));
            }
        }
        st
    }
}

/// How the queue's rollback table names a policy file: its absolute, resolved path.
pub fn policy_key(policy_path: &Path) -> String {
    std::fs::canonicalize(policy_path)
        .unwrap_or_else(|_| policy_path.to_path_buf())
        .display()
        .to_string()
}

/// Marks a signed `st` unsigned when `newest_seen` (signed_at_ms, signer) is newer than its
/// newest trusted signature: a rollback to an older signed policy.
pub fn refuse_rollback(st: &mut Status, policy_path: &Path, newest_seen: Option<(i64, String)>) {
    let (Some((at, _)), Some((newer, by))) = (st.newest.as_ref(), newest_seen) else {
        return;
    };
    if st.signed && newer > *at {
        st.signed = false;
        st.problem = Some(rollback_message(policy_path, *at, newer, &by));
    }
}

/// What a refused rollback says.
pub fn rollback_message(policy_path: &Path, at: i64, newer: i64, newer_by: &str) -> String {
    format!(
        "{} was signed at {}, but a newer policy signed at {} by {newer_by} has been seen: this is a rollback; an approver must sign the current file again if it is intended",
        policy_path.display(),
        format_ms(at),
        format_ms(newer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::SourceFile;

    const POLICY: &str = include_str!("../../policy.toml");

    fn setup(dir: &Path, policy_text: &str) -> (Policy, Catalogue) {
        let p = dir.join("policy.toml");
        std::fs::write(&p, policy_text).unwrap();
        let c = Catalogue::builtin().unwrap();
        let pol = Policy::parse(&SourceFile::new(&p, policy_text), Some(&c)).unwrap();
        (pol, c)
    }

    fn trust_with(dir: &Path, keys: &[&ApproverKey]) -> PathBuf {
        let p = dir.join("approvers.toml");
        let mut t = String::new();
        for k in keys {
            t.push_str(&format!(
                "[[approver]]\nname = \"{}\"\npublic_key = \"{}\"\n",
                k.name(),
                k.public()
            ));
        }
        std::fs::write(&p, t).unwrap();
        p
    }

    #[test]
    fn manifest_text_round_trips_and_lists_enabled_tools_only() {
        let dir = tempfile::tempdir().unwrap();
        let (p, c) = setup(dir.path(), POLICY);
        let m = Manifest::of(&p, &c);
        assert_eq!(Manifest::parse(&m.text()), Some(m.clone()));
        let names: Vec<&str> = m.tools.keys().map(String::as_str).collect();
        assert_eq!(names, crate::catalogue::tests::builtin_tools());
        // A tool only a deny rule names is not enabled.
        let only_deny = POLICY.replace(
            "tools = [\"read_logs\"]\nenvironments = [\"staging\"]\nresources = [\"/app/staging/*\"]\ndecision = \"allow\"",
            "tools = [\"read_logs\"]\nenvironments = [\"staging\"]\nresources = [\"/app/staging/*\"]\ndecision = \"deny\"",
        );
        assert_ne!(only_deny, POLICY);
        let (p2, c2) = setup(dir.path(), &only_deny);
        let m2 = Manifest::of(&p2, &c2);
        assert!(!m2.tools.contains_key("read_logs"));
        assert_eq!(
            m2.changes_since(&m),
            [
                "the policy file changed",
                "tool `read_logs` is no longer enabled"
            ]
        );
        assert!(Manifest::parse("airlock-policy-manifest-v1\npolicy x\ntool a\n").is_none());
    }

    #[test]
    fn signed_by_a_trusted_key_changed_untrusted_and_forged() {
        let dir = tempfile::tempdir().unwrap();
        let (p, c) = setup(dir.path(), POLICY);
        let alice = ApproverKey::generate("alice");
        let eve = ApproverKey::generate("eve");
        let trust_path = trust_with(dir.path(), &[&alice]);
        let trust = TrustFile::load(&trust_path).unwrap();
        let sig = signature_path(&p.path);
        assert!(sig.ends_with("policy.toml.sig"));
        let m = Manifest::of(&p, &c);

        let st = status(&m, &sig, Ok(&trust), &trust_path);
        assert!(!st.signed);
        assert!(st.problem.unwrap().contains("never been signed"));

        write_signature(&sig, &PolicySignature::sign(&eve, &m, 1_000)).unwrap();
        let st = status(&m, &sig, Ok(&trust), &trust_path);
        assert!(!st.signed);
        assert!(st.problem.unwrap().contains("not in the trust file"));

        write_signature(&sig, &PolicySignature::sign(&alice, &m, 2_000)).unwrap();
        let st = status(&m, &sig, Ok(&trust), &trust_path);
        assert!(st.signed, "{st:?}");
        assert_eq!(st.signed_by[0].name, "alice");
        assert_eq!(read_signatures(&sig).unwrap().unwrap().len(), 2);

        // The policy changes: the old signature no longer counts, and status says what changed.
        let mut m2 = m.clone();
        m2.policy_sha256 = "0".repeat(64);
        let st = status(&m2, &sig, Ok(&trust), &trust_path);
        assert!(!st.signed);
        assert_eq!(st.changes, ["the policy file changed"]);
        assert!(
            st.problem
                .unwrap()
                .contains("changed since alice signed it")
        );

        // A signature edited to cover the new hash does not verify.
        let mut text = std::fs::read_to_string(&sig).unwrap();
        text = text.replace(&m.hash(), &m2.hash());
        std::fs::write(&sig, text).unwrap();
        let st = status(&m2, &sig, Ok(&trust), &trust_path);
        assert!(!st.signed);
        assert_eq!(st.bad_signatures.len(), 2, "{st:?}");

        // No trust file: nothing is signed.
        std::fs::write(&sig, "").unwrap();
        write_signature(&sig, &PolicySignature::sign(&alice, &m, 3_000)).unwrap();
        let st = status(&m, &sig, Err("missing".into()), &trust_path);
        assert!(!st.signed);
        // Garbage in the signature file is an error with a location, not a panic.
        std::fs::write(&sig, "signature = 3\n").unwrap();
        let st = status(&m, &sig, Ok(&trust), &trust_path);
        assert!(st.problem.unwrap().contains("policy.toml.sig:1:"), "");
    }

    #[test]
    fn integrity_notices_the_file_changing_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (p, c) = setup(dir.path(), POLICY);
        let alice = ApproverKey::generate("alice");
        let trust_path = trust_with(dir.path(), &[&alice]);
        let i = Integrity::new(&p, &c, &trust_path);
        write_signature(
            &signature_path(&p.path),
            &PolicySignature::sign(&alice, &i.manifest, 1),
        )
        .unwrap();
        assert!(i.check().signed);
        std::fs::write(&p.path, format!("{POLICY}\n# edited\n")).unwrap();
        let st = i.check();
        assert!(!st.signed);
        assert!(st.problem.unwrap().contains("changed on disk"));
    }
}
