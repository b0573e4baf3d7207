//! Approvers' Ed25519 keys: generating them, signing claims, and keeping the private key on
//! disk only as a passphrase-encrypted PKCS#8 PEM (PBES2: scrypt + AES-256-CBC), plus the
//! `ed25519:<base64>` text form of public keys used in the trust file.

use super::{ApprovalClaim, ApprovalError};
use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use pkcs8::{
    self, DecodePrivateKey, EncodePrivateKey, EncryptedPrivateKeyInfoRef, LineEnding,
    PrivateKeyInfoRef,
    der::pem::PemLabel,
    pkcs5::{EncryptionScheme, pbes2, scrypt},
};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// First line of a key file; the PEM follows on the next line.
const HEADER: &str = "# airlock approver: ";
/// scrypt cost for new key files: N = 2^15 (32 MiB), r = 8, p = 1.
const SCRYPT_LOG_N: u8 = 15;
/// Highest scrypt cost accepted when reading a key file (N = 2^20, 1 GiB at r = 8), so a
/// crafted file cannot make us allocate without bound.
const MAX_LOG_N: u32 = 20;

/// An approver's private signing key with the approver's name. `Debug` shows only the name and
/// the public key.
pub struct ApproverKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApproverKey")
            .field("name", &self.name)
            .field("public", &self.public().to_string())
            .finish_non_exhaustive()
    }
}

/// Checks that an approver name is 1–64 characters of `A-Z a-z 0-9 . _ -` not starting with
/// `.` or `-`, so it is safe in a file name and on the key file's header line.
pub fn check_name(name: &str) -> Result<(), ApprovalError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (1..=64).contains(&name.len()) && name.chars().all(ok_char) && !name.starts_with(['.', '-'])
    {
        Ok(())
    } else {
        Err(ApprovalError::BadName(format!(
            "{name:?}: use 1-64 characters from A-Z a-z 0-9 . _ - not starting with . or -"
        )))
    }
}

fn key_file_err(message: impl Into<String>) -> ApprovalError {
    ApprovalError::KeyFile {
        path: String::new(),
        message: message.into(),
    }
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> ApprovalError {
    ApprovalError::KeyFile {
        path: path.display().to_string(),
        message: format!("cannot {what}: {e}"),
    }
}

impl ApproverKey {
    /// A new random key (from the operating system's generator) for approver `name`. The name
    /// is checked (see [`check_name`]) when the key is saved.
    ///
    /// # Panics
    /// Only if the operating system's random generator fails, which no input can cause.
    pub fn generate(name: &str) -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        // The OS generator failing leaves nothing safe to do; this is not reachable from input.
        getrandom::fill(seed.as_mut()).expect("the operating system's random generator failed");
        Self {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The approver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to put in the trust file.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs `claim.message()`; the signature is standard base64 of its 64 bytes.
    pub fn sign(&self, claim: &ApprovalClaim) -> String {
        self.sign_message(&claim.message())
    }

    /// Signs domain-separated `message` bytes (e.g. a policy signature claim); standard base64.
    pub fn sign_message(&self, message: &[u8]) -> String {
        Base64::encode_string(&self.key.sign(message).to_bytes())
    }

    /// The key file's text: a `# airlock approver: NAME` line, then an
    /// `ENCRYPTED PRIVATE KEY` PEM (PKCS#8, PBES2 with scrypt and AES-256-CBC).
    pub fn to_encrypted_pem(&self, passphrase: &str) -> Result<String, ApprovalError> {
        check_name(&self.name)?;
        let fail = |e: pkcs8::Error| key_file_err(format!("cannot encrypt the key: {e}"));
        let (mut salt, mut iv) = ([0u8; 16], [0u8; 16]);
        getrandom::fill(&mut salt)
            .and_then(|()| getrandom::fill(&mut iv))
            .map_err(|e| ApprovalError::Io(format!("no randomness: {e}")))?;
        let params = scrypt::Params::new(SCRYPT_LOG_N, 8, 1)
            .map_err(|_| key_file_err("bad scrypt parameters"))?;
        let params = pbes2::Parameters::generate_scrypt_aes256cbc(params, &salt, iv)
            .map_err(|e| fail(e.into()))?;
        let der = self.key.to_pkcs8_der().map_err(fail)?;
        let info = PrivateKeyInfoRef::try_from(der.as_bytes()).map_err(fail)?;
        let pem = info
            .encrypt_with_params(params, passphrase)
            .map_err(fail)?
            .to_pem(EncryptedPrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
            .map_err(|e| fail(e.into()))?;
        Ok(format!("{HEADER}{}\n{}", self.name, pem.as_str()))
    }

    /// Reads a key file's text made by [`Self::to_encrypted_pem`]. A passphrase that does not
    /// decrypt it gives [`ApprovalError::BadPassphrase`].
    pub fn from_encrypted_pem(text: &str, passphrase: &str) -> Result<Self, ApprovalError> {
        let (first, pem) = text.split_once('\n').unwrap_or((text, ""));
        let name = first
            .trim_end()
            .strip_prefix(HEADER)
            .ok_or_else(|| key_file_err(format!("the first line must be `{HEADER}NAME`")))?
            .trim()
            .to_string();
        check_name(&name)?;
        let not_pem =
            |e: pkcs8::der::Error| key_file_err(format!("not an encrypted PKCS#8 PEM: {e}"));
        let (label, doc) = pkcs8::der::Document::from_pem(pem.trim()).map_err(not_pem)?;
        EncryptedPrivateKeyInfoRef::validate_pem_label(label).map_err(|_| {
            key_file_err(format!("expected an ENCRYPTED PRIVATE KEY, found {label}"))
        })?;
        let info = EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes())
            .map_err(|e| key_file_err(format!("not an encrypted PKCS#8 key: {e}")))?;
        check_kdf(&info.encryption_algorithm)?;
        let plain = info
            .decrypt(passphrase)
            .map_err(|_| ApprovalError::BadPassphrase)?;
        // Garbage that happened to pass the padding check is a wrong passphrase too.
        PrivateKeyInfoRef::try_from(plain.as_bytes()).map_err(|_| ApprovalError::BadPassphrase)?;
        let key = SigningKey::from_pkcs8_der(plain.as_bytes())
            .map_err(|e| key_file_err(format!("not an Ed25519 key: {e}")))?;
        Ok(Self { name, key })
    }

    /// Reads and decrypts the key file at `path`.
    pub fn load(path: &Path, passphrase: &str) -> Result<Self, ApprovalError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| io_err(path, "read the approver key", e))?;
        Self::from_encrypted_pem(&text, passphrase).map_err(|e| match e {
            ApprovalError::KeyFile { message, .. } => ApprovalError::KeyFile {
                path: path.display().to_string(),
                message,
            },
            e => e,
        })
    }

    /// Writes the encrypted key to a new file at `path` (mode 0600 on Unix), creating missing
    /// parent directories (mode 0700). Never overwrites an existing file.
    pub fn save(&self, path: &Path, passphrase: &str) -> Result<(), ApprovalError> {
        let text = self.to_encrypted_pem(passphrase)?;
        let mut dirs = std::fs::DirBuilder::new();
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            dirs.mode(0o700);
            file.mode(0o600);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.recursive(true)
                .create(parent)
                .map_err(|e| io_err(parent, "create the directory", e))?;
        }
        let mut f = file
            .open(path)
            .map_err(|e| io_err(path, "create the key file (it is never overwritten)", e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| {
                // Leave no half-written key behind to block the next attempt.
                let _ = std::fs::remove_file(path);
                io_err(path, "write the key file", e)
            })
    }
}

/// Accepts only PBES2 with scrypt at a bounded cost (what [`ApproverKey::to_encrypted_pem`]
/// writes), checked before any key derivation runs.
fn check_kdf(scheme: &EncryptionScheme) -> Result<(), ApprovalError> {
    let Some(pbes2::Kdf::Scrypt(p)) = scheme.pbes2().map(|p| &p.kdf) else {
        return Err(key_file_err(
            "unsupported encryption: expected PBES2 with scrypt",
        ));
    };
    let n = p.cost_parameter;
    if !n.is_power_of_two()
        || n.trailing_zeros() > MAX_LOG_N
        || !(1..=16).contains(&p.block_size)
        || !(1..=4).contains(&p.parallelization)
    {
        return Err(key_file_err(format!(
            "unsupported scrypt cost N={n} r={} p={}",
            p.block_size, p.parallelization
        )));
    }
    Ok(())
}

/// An approver's Ed25519 public key. Its text form is `ed25519:` followed by the standard
/// base64 of the 32 raw bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl PublicKey {
    /// A short stable name for the key: `SHA256:` and the first 16 hex digits of the SHA-256
    /// of the 32 raw bytes.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        format!("SHA256:{}", &hex::encode(digest)[..16])
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", Base64::encode_string(self.0.as_bytes()))
    }
}

impl FromStr for PublicKey {
    type Err = ApprovalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HINT: &str =
            "expected `ed25519:` and the base64 of 32 bytes, as printed by `airlock approver init`";
        let b64 = s.trim().strip_prefix("ed25519:").ok_or_else(|| {
            ApprovalError::BadPublicKey(format!("{HINT}; it does not start with `ed25519:`"))
        })?;
        let bytes = Base64::decode_vec(b64).map_err(|_| {
            ApprovalError::BadPublicKey(format!("{HINT}; the part after `ed25519:` is not base64"))
        })?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            ApprovalError::BadPublicKey(format!("{HINT}; it decodes to {} bytes", bytes.len()))
        })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            ApprovalError::BadPublicKey(format!("{HINT}; the bytes are not an Ed25519 point"))
        })?;
        if key.is_weak() {
            return Err(ApprovalError::BadPublicKey(
                "a weak (small-order) key cannot be trusted".into(),
            ));
        }
        Ok(PublicKey(key))
    }
}

/// Where `airlock approver init` keeps approver `name`'s key:
/// `$XDG_CONFIG_HOME/airlock/approver-NAME.key`, else `$HOME/.config/airlock/approver-NAME.key`.
/// Check `name` with [`check_name`] first.
pub fn default_key_path(name: &str) -> PathBuf {
    super::config_dir().join(format!("approver-{name}.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_pem_round_trip_and_wrong_passphrase() {
        let k = ApproverKey::generate("alice");
        let pem = k.to_encrypted_pem("correct horse").unwrap();
        assert!(
            pem.starts_with("# airlock approver: alice\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{pem}"
        );
        let back = ApproverKey::from_encrypted_pem(&pem, "correct horse").unwrap();
        assert_eq!((back.name(), back.public()), ("alice", k.public()));
        assert!(matches!(
            ApproverKey::from_encrypted_pem(&pem, "wrong"),
            Err(ApprovalError::BadPassphrase)
        ));
        assert!(matches!(
            ApproverKey::from_encrypted_pem(&pem[26..], "x"),
            Err(ApprovalError::KeyFile { .. })
        ));
        let garbled = pem.replace("-----END", "AAAA\n-----END");
        assert!(matches!(
            ApproverKey::from_encrypted_pem(&garbled, "x"),
            Err(ApprovalError::KeyFile { .. })
        ));
    }

    #[test]
    fn hostile_scrypt_costs_are_refused_before_deriving() {
        use pkcs8::der::{Decode, Encode};
        let pem = ApproverKey::generate("alice")
            .to_encrypted_pem("pw")
            .unwrap();
        let (_, doc) = pkcs8::der::Document::from_pem(pem.split_once('\n').unwrap().1).unwrap();
        for (n, r) in [(0, 8), (3, 8), (1 << 30, 8), (1 << 15, 0), (1 << 15, 1000)] {
            let mut info = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).unwrap();
            let EncryptionScheme::Pbes2(p) = &mut info.encryption_algorithm else {
                panic!("not PBES2")
            };
            let pbes2::Kdf::Scrypt(k) = &mut p.kdf else {
                panic!("not scrypt")
            };
            (k.cost_parameter, k.block_size) = (n, r);
            let der = info.to_der().unwrap();
            let text =
                pkcs8::der::pem::encode_string("ENCRYPTED PRIVATE KEY", LineEnding::LF, &der);
            let e =
                ApproverKey::from_encrypted_pem(&format!("{HEADER}alice\n{}", text.unwrap()), "pw");
            assert!(
                matches!(e, Err(ApprovalError::KeyFile { .. })),
                "N={n} r={r}: {e:?}"
            );
        }
    }

    #[test]
    fn pem_and_debug_hold_no_private_key_material() {
        let k = ApproverKey::generate("alice");
        let seed = k.key.to_bytes();
        let pem = k.to_encrypted_pem("pw").unwrap();
        let debug = format!("{k:?}");
        let der = k.key.to_pkcs8_der().unwrap();
        let forms = [
            Base64::encode_string(&seed),
            hex::encode(seed),
            hex::encode_upper(seed),
            Base64::encode_string(der.as_bytes()),
        ];
        for text in [&pem, &debug] {
            for form in &forms {
                assert!(!text.contains(&form[..40.min(form.len())]), "{text}");
            }
            assert!(!text.contains(&format!("{:?}", seed)[..40]));
        }
        let pem_der = pkcs8::der::Document::from_pem(pem.split_once('\n').unwrap().1)
            .unwrap()
            .1;
        assert!(
            !pem_der.as_bytes().windows(32).any(|w| w == seed),
            "raw seed inside the encrypted DER"
        );
        assert!(debug.contains("alice"));
    }

    #[test]
    fn public_key_text_round_trip_and_junk() {
        let p = ApproverKey::generate("a").public();
        let s = p.to_string();
        assert!(s.starts_with("ed25519:") && s.len() == 8 + 44, "{s}");
        assert_eq!(s.parse::<PublicKey>().unwrap(), p);
        assert!(p.fingerprint().starts_with("SHA256:") && p.fingerprint().len() == 23);
        let b64 = &s[8..];
        for junk in [
            "",
            "ed25519:",
            &s[8..],
            &format!("ssh-ed25519:{b64}"),
            "ed25519:!!!",
            "ed25519:AAAA",
            &format!("ed25519:{}", Base64::encode_string(&[0u8; 32])),
        ] {
            let e = junk.parse::<PublicKey>().unwrap_err();
            assert!(matches!(e, ApprovalError::BadPublicKey(_)), "{junk}: {e}");
        }
    }

    #[test]
    fn names_are_checked() {
        for ok in ["alice", "bob.smith", "ci_1-x"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "../x", "a b", "a\nb", ".hidden", "-x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            ApproverKey::generate("a/b").to_encrypted_pem("p"),
            Err(ApprovalError::BadName(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn save_creates_private_file_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/approver-alice.key");
        let k = ApproverKey::generate("alice");
        k.save(&path, "pw").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let before = std::fs::read(&path).unwrap();
        let e = ApproverKey::generate("alice")
            .save(&path, "pw")
            .unwrap_err();
        assert!(matches!(e, ApprovalError::KeyFile { .. }), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(ApproverKey::load(&path, "pw").unwrap().public(), k.public());
        let e = ApproverKey::load(&dir.path().join("missing.key"), "pw").unwrap_err();
        assert!(e.to_string().contains("missing.key"), "{e}");
    }
}
