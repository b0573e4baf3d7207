//! Human approval of queued requests: what an approver signs ([`ApprovalClaim`]), how a
//! signature is checked ([`verify`]), and the errors of this area. Approvers' keys live in
//! [`keys`], the trust file listing their public keys in [`trust`], and the terminal prompts
//! in [`tty`].

pub mod keys;
pub mod trust;
pub mod tty;

pub use keys::{ApproverKey, PublicKey};

use std::path::PathBuf;

use base64ct::{Base64, Encoding};
use ed25519_dalek::Signature;

/// Everything that can go wrong while approving or checking an approval.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No controlling terminal: approvals are typed by a person, never piped in.
    #[error("{0}")]
    NoTerminal(String),
    /// The passphrase does not decrypt the approver key.
    #[error("wrong passphrase for the approver key")]
    BadPassphrase,
    /// A key file that cannot be read, written or understood (`path` is empty when the key
    /// text did not come from a file).
    #[error("{}: {message}", if .path.is_empty() { "approver key" } else { .path.as_str() })]
    KeyFile { path: String, message: String },
    /// A signature that is malformed or does not match the claim and key.
    #[error("bad approval signature: {0}")]
    BadSignature(String),
    /// A public key string that is not `ed25519:<base64 of 32 bytes>` or not a usable key.
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// An approver name that cannot be used in a file name or a key file header.
    #[error("bad approver name: {0}")]
    BadName(String),
    /// An input/output failure on the terminal or elsewhere.
    #[error("{0}")]
    Io(String),
}

/// Exactly what an approver signs: one request, pinned to the call and policy it was queued
/// under, with the approval time and the earliest time it may run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalClaim {
    pub request_id: String,
    pub call_hash: String,
    pub policy_hash: String,
    pub approved_at_ms: i64,
    pub not_before_ms: i64,
}

impl ApprovalClaim {
    /// Domain-separated, unambiguous bytes to sign: `airlock-approval-v1\n`, then each field in
    /// a fixed order as `name=value\n`. Backslashes and newlines inside string values are
    /// escaped (`\\`, `\n`), so no value can end its line early and two different claims never
    /// give the same bytes.
    pub fn message(&self) -> Vec<u8> {
        fn esc(s: &str) -> String {
            s.replace('\\', "\\\\").replace('\n', "\\n")
        }
        format!(
            "airlock-approval-v1\nrequest_id={}\ncall_hash={}\npolicy_hash={}\napproved_at_ms={}\nnot_before_ms={}\n",
            esc(&self.request_id),
            esc(&self.call_hash),
            esc(&self.policy_hash),
            self.approved_at_ms,
            self.not_before_ms,
        )
        .into_bytes()
    }
}

/// `key`'s approval of request `r`, made at `approved_at`, which may run `cooldown_ms` later:
/// the signature over exactly this request, its call and its policy, as the queue records it.
/// `approver` is the name the trust file gives the key.
pub fn approve(
    key: &ApproverKey,
    approver: &str,
    r: &crate::queue::Request,
    approved_at: i64,
    cooldown_ms: i64,
) -> crate::queue::Approval {
    let not_before = approved_at + cooldown_ms;
    let claim = ApprovalClaim {
        request_id: r.id.clone(),
        call_hash: r.call_hash.clone(),
        policy_hash: r.policy_hash.clone(),
        approved_at_ms: approved_at,
        not_before_ms: not_before,
    };
    crate::queue::Approval {
        request_id: r.id.clone(),
        approver: approver.to_string(),
        public_key: key.public().to_string(),
        approved_at,
        not_before,
        signature: key.sign(&claim),
    }
}

/// Checks that `signature_b64` (standard base64, as made by [`ApproverKey::sign`]) is `key`'s
/// signature over `claim`. Uses strict Ed25519 verification (no malleable or weak-key forms).
pub fn verify(
    key: &PublicKey,
    claim: &ApprovalClaim,
    signature_b64: &str,
) -> Result<(), ApprovalError> {
    verify_message(key, &claim.message(), signature_b64).map_err(|e| match e {
        ApprovalError::BadSignature(m) if m.starts_with("it does not match") => {
            ApprovalError::BadSignature(format!(
                "it does not match request {} for key {}",
                claim.request_id,
                key.fingerprint()
            ))
        }
        e => e,
    })
}

/// Checks that `signature_b64` is `key`'s strict Ed25519 signature over `message`.
pub fn verify_message(
    key: &PublicKey,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), ApprovalError> {
    let bytes = Base64::decode_vec(signature_b64.trim())
        .map_err(|_| ApprovalError::BadSignature("the signature is not standard base64".into()))?;
    let sig = Signature::from_slice(&bytes).map_err(|_| {
        ApprovalError::BadSignature(format!("expected 64 bytes, got {}", bytes.len()))
    })?;
    key.verifying_key()
        .verify_strict(message, &sig)
        .map_err(|_| {
            ApprovalError::BadSignature(format!("it does not match for key {}", key.fingerprint()))
        })
}

/// `$XDG_CONFIG_HOME/airlock` when that is set to an absolute path, else
/// `$HOME/.config/airlock`.
pub(crate) fn config_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
    });
    base.join("airlock")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> ApprovalClaim {
        ApprovalClaim {
            request_id: "req-1".into(),
            call_hash: "c0ffee".into(),
            policy_hash: "beef".into(),
            approved_at_ms: 1_700_000_000_000,
            not_before_ms: 1_700_000_060_000,
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = ApproverKey::generate("alice");
        let sig = k.sign(&claim());
        verify(&k.public(), &claim(), &sig).unwrap();
    }

    #[test]
    fn verify_rejects_any_changed_field_other_key_and_garbage() {
        let k = ApproverKey::generate("alice");
        let sig = k.sign(&claim());
        let changes: [fn(&mut ApprovalClaim); 5] = [
            |c| c.request_id.push('x'),
            |c| c.call_hash.push('x'),
            |c| c.policy_hash.push('x'),
            |c| c.approved_at_ms += 1,
            |c| c.not_before_ms -= 1,
        ];
        for change in changes {
            let mut c = claim();
            change(&mut c);
            assert!(matches!(
                verify(&k.public(), &c, &sig),
                Err(ApprovalError::BadSignature(_))
            ));
        }
        let other = ApproverKey::generate("bob");
        assert!(matches!(
            verify(&other.public(), &claim(), &sig),
            Err(ApprovalError::BadSignature(_))
        ));
        for junk in [
            "",
            "not base64!",
            "AAAA",
            &Base64::encode_string(&[0u8; 64]),
        ] {
            assert!(matches!(
                verify(&k.public(), &claim(), junk),
                Err(ApprovalError::BadSignature(_))
            ));
        }
    }

    #[test]
    fn moving_text_between_fields_changes_the_message() {
        let mut a = claim();
        a.request_id = "r\ncall_hash=x".into();
        a.call_hash = "y".into();
        let mut b = claim();
        b.request_id = "r".into();
        b.call_hash = "x\ncall_hash=y".into();
        assert_ne!(a.message(), b.message());
        let (mut c, mut d) = (claim(), claim());
        (c.request_id, c.call_hash) = ("ab".into(), "c".into());
        (d.request_id, d.call_hash) = ("a".into(), "bc".into());
        assert_ne!(c.message(), d.message());
        let (mut e, mut f) = (claim(), claim());
        (e.request_id, e.call_hash) = ("a\\".into(), "n".into());
        (f.request_id, f.call_hash) = ("a".into(), "\\n".into());
        assert_ne!(e.message(), f.message());
        assert!(
            claim()
                .message()
                .starts_with(b"airlock-approval-v1\nrequest_id=req-1\n")
        );
    }
}
