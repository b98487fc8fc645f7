//! Sigstore key files, as cosign and containers/image write and read them.
//!
//! A private key file is a PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign:
//! `ENCRYPTED COSIGN PRIVATE KEY`) around JSON:
//! `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":B64},
//!   "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}`: the passphrase through
//! scrypt gives a 32-byte key, which opens (NaCl secretbox, XSalsa20-Poly1305, tag first) the
//! PKCS#8 DER of an ECDSA P-256 key. A public key file is a PEM `PUBLIC KEY` (PKIX DER).
//!
//! Nothing here prints or returns key material in a message: errors name the file only, and
//! [`PrivateKey`]'s `Debug` shows nothing of the key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::der::pem::LineEnding;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::SignError;

/// The PEM label hoist writes (cosign ≥ 2 and containers/image write it too).
pub const SIGSTORE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label of older cosign key files, read as well.
pub const COSIGN_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// scrypt cost cosign uses (N = 2^15, r = 8, p = 1).
const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 1;
/// The largest cost accepted from a file (a hostile file must not make hoist spin for minutes
/// or take gigabytes): N ≤ 2^20, r ≤ 32, p ≤ 16.
const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 32;
const MAX_P: u32 = 16;

/// A private signing key, decrypted. Its `Debug` output shows nothing of it.
pub struct PrivateKey(SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(…)")
    }
}

/// A public key that verifies signatures, with where it came from (for messages).
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    /// The file, or `keyData` of a policy: what a message names.
    pub origin: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: KdfParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64 with padding.
mod b64 {
    use base64::Engine as _;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

fn kdf(passphrase: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32], String> {
    let params = scrypt::Params::new(log_n, r, p, 32).map_err(|e| format!("scrypt: {e}"))?;
    let mut out = [0u8; 32];
    scrypt::scrypt(passphrase, salt, &params, &mut out).map_err(|e| format!("scrypt: {e}"))?;
    Ok(out)
}

impl PrivateKey {
    /// A new random P-256 key (from the operating system's random source).
    pub fn generate() -> PrivateKey {
        PrivateKey(SigningKey::random(&mut OsRng))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: *self.0.verifying_key(),
            origin: "the private key".into(),
        }
    }

    /// The encrypted key file's text (`ENCRYPTED SIGSTORE PRIVATE KEY`), sealed with
    /// `passphrase` at cosign's scrypt cost.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String, String> {
        self.to_encrypted_pem_with(passphrase, LOG_N, R, P)
    }

    fn to_encrypted_pem_with(
        &self,
        passphrase: &[u8],
        log_n: u8,
        r: u32,
        p: u32,
    ) -> Result<String, String> {
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| format!("cannot encode the key: {e}"))?;
        let mut salt = vec![0u8; 32];
        OsRng.fill_bytes(&mut salt);
        let mut nonce = vec![0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let key = Zeroizing::new(kdf(passphrase, &salt, log_n, r, p)?);
        let cipher = XSalsa20Poly1305::new(key.as_ref().into());
        let ciphertext = cipher
            .encrypt(nonce.as_slice().into(), der.as_bytes())
            .map_err(|_| "cannot encrypt the key".to_string())?;
        let env = Envelope {
            kdf: Kdf {
                name: "scrypt".into(),
                params: KdfParams {
                    n: 1u64 << log_n,
                    r,
                    p,
                },
                salt,
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce,
            },
            ciphertext,
        };
        let json = serde_json::to_vec(&env).map_err(|e| e.to_string())?;
        p256::pkcs8::der::pem::encode_string(SIGSTORE_LABEL, LineEnding::LF, &json)
            .map_err(|e| format!("cannot encode the key file: {e}"))
    }

    /// Opens an encrypted key file's text. `path` is only for messages.
    pub fn from_encrypted_pem(
        text: &[u8],
        passphrase: &[u8],
        path: &Path,
    ) -> Result<PrivateKey, SignError> {
        let bad = |reason: String| SignError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let (label, json) = p256::pkcs8::der::pem::decode_vec(text).map_err(|_| {
            bad("not a sigstore private key (no PEM block `ENCRYPTED SIGSTORE PRIVATE KEY`)".into())
        })?;
        if label != SIGSTORE_LABEL && label != COSIGN_LABEL {
            return Err(bad(format!(
                "a PEM `{label}` block, not `{SIGSTORE_LABEL}` or `{COSIGN_LABEL}`"
            )));
        }
        let env: Envelope = serde_json::from_slice(&json)
            .map_err(|e| bad(format!("the encrypted key is not valid: {e}")))?;
        if env.kdf.name != "scrypt" {
            return Err(bad(format!(
                "key derivation `{}` is not supported (only `scrypt`)",
                env.kdf.name
            )));
        }
        if env.cipher.name != "nacl/secretbox" {
            return Err(bad(format!(
                "cipher `{}` is not supported (only `nacl/secretbox`)",
                env.cipher.name
            )));
        }
        let n = env.kdf.params.n;
        if !n.is_power_of_two() || n < 2 {
            return Err(bad(format!("scrypt N = {n} is not a power of two")));
        }
        let log_n = n.trailing_zeros() as u8;
        let (r, p) = (env.kdf.params.r, env.kdf.params.p);
        if log_n > MAX_LOG_N || r > MAX_R || p > MAX_P || r == 0 || p == 0 {
            return Err(bad(format!(
                "scrypt cost N = {n}, r = {r}, p = {p} is outside what hoist accepts (N ≤ 2^{MAX_LOG_N}, r ≤ {MAX_R}, p ≤ {MAX_P})"
            )));
        }
        if env.cipher.nonce.len() != 24 {
            return Err(bad("the secretbox nonce is not 24 bytes".into()));
        }
        let key = Zeroizing::new(kdf(passphrase, &env.kdf.salt, log_n, r, p).map_err(bad)?);
        let cipher = XSalsa20Poly1305::new(key.as_ref().into());
        let der = Zeroizing::new(
            cipher
                .decrypt(
                    env.cipher.nonce.as_slice().into(),
                    env.ciphertext.as_slice(),
                )
                .map_err(|_| SignError::WrongPassphrase(path.to_path_buf()))?,
        );
        let key = SigningKey::from_pkcs8_der(&der)
            .map_err(|_| bad("the decrypted key is not a PKCS#8 ECDSA P-256 key".into()))?;
        Ok(PrivateKey(key))
    }

    /// Reads and opens an encrypted key file.
    pub fn read(path: &Path, passphrase: &[u8]) -> Result<PrivateKey, SignError> {
        let text = std::fs::read(path).map_err(|e| SignError::Io {
            what: format!("cannot read the private key `{}`", path.display()),
            err: e,
        })?;
        Self::from_encrypted_pem(&text, passphrase, path)
    }

    /// Signs `payload`: ECDSA P-256 over its SHA-256, the signature in ASN.1 DER.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: Signature = self.0.sign(payload);
        let der: DerSignature = sig.to_der();
        der.as_bytes().to_vec()
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (PKIX) holding a P-256 key; `origin` names it in messages.
    pub fn from_pem(text: &[u8], origin: &str) -> Result<PublicKey, String> {
        let s = std::str::from_utf8(text).map_err(|_| format!("`{origin}` is not PEM text"))?;
        let key = VerifyingKey::from_public_key_pem(s.trim())
            .map_err(|_| format!("`{origin}` is not a PEM `PUBLIC KEY` of an ECDSA P-256 key"))?;
        Ok(PublicKey {
            key,
            origin: origin.to_string(),
        })
    }

    /// Reads a public key file.
    pub fn read(path: &Path) -> Result<PublicKey, SignError> {
        let text = std::fs::read(path).map_err(|e| SignError::Io {
            what: format!("cannot read the public key `{}`", path.display()),
            err: e,
        })?;
        Self::from_pem(&text, &path.display().to_string()).map_err(|reason| SignError::KeyFile {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The PEM text of the key.
    pub fn to_pem(&self) -> Result<String, String> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| format!("cannot encode the public key: {e}"))
    }

    /// Whether `signature` (ASN.1 DER; base64 already removed) is this key's ECDSA P-256
    /// SHA-256 signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        match Signature::from_der(signature) {
            Ok(sig) => self.key.verify(payload, &sig).is_ok(),
            Err(_) => false,
        }
    }

    /// The standard base64 of the signature annotation, decoded (`None` if it is not base64).
    pub fn decode_annotation(s: &str) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim().as_bytes())
            .ok()
    }
}

/// Writes `PREFIX.private` (0600) and `PREFIX.pub` (0644) for a new key. Each file appears
/// whole or not at all (a temporary file in the same directory, synced, then linked into
/// place without replacing); an existing file is never overwritten, and if the second file
/// cannot be placed the first is removed again.
pub fn write_key_pair(
    prefix: &Path,
    key: &PrivateKey,
    passphrase: &[u8],
) -> Result<(PathBuf, PathBuf), SignError> {
    let private = PathBuf::from(format!("{}.private", prefix.display()));
    let public = PathBuf::from(format!("{}.pub", prefix.display()));
    for p in [&private, &public] {
        if p.symlink_metadata().is_ok() {
            return Err(SignError::Exists { path: p.clone() });
        }
    }
    let private_text = key
        .to_encrypted_pem(passphrase)
        .map_err(|reason| SignError::KeyFile {
            path: private.clone(),
            reason,
        })?;
    let public_text = key.public().to_pem().map_err(|reason| SignError::KeyFile {
        path: public.clone(),
        reason,
    })?;
    place(&private, private_text.as_bytes(), 0o600)?;
    if let Err(e) = place(&public, public_text.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok((private, public))
}

/// Writes `data` to a new file `path` with `mode`, atomically, never replacing a file.
fn place(path: &Path, data: &[u8], mode: u32) -> Result<(), SignError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| SignError::Io {
        what: format!("cannot write `{}`", path.display()),
        err: e,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".hoist-key-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.write_all(data).map_err(io)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            SignError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(e.error)
        }
    })?;
    let _ = crate::util::sync_dir(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_opens_with_its_passphrase_only() {
        let key = PrivateKey::generate();
        // a cheap cost keeps the debug-build test quick; the format is the same
        let pem = key.to_encrypted_pem_with(b"pass", 10, 8, 1).expect("pem");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let back =
            PrivateKey::from_encrypted_pem(pem.as_bytes(), b"pass", Path::new("k")).expect("opens");
        let sig = back.sign(b"payload");
        assert!(key.public().verifies(b"payload", &sig));
        assert!(!key.public().verifies(b"other", &sig));
        let e = PrivateKey::from_encrypted_pem(pem.as_bytes(), b"wrong", Path::new("k"))
            .expect_err("wrong passphrase");
        assert!(matches!(e, SignError::WrongPassphrase(_)), "{e}");
        let old = pem.replace(SIGSTORE_LABEL, COSIGN_LABEL);
        PrivateKey::from_encrypted_pem(old.as_bytes(), b"pass", Path::new("k")).expect("cosign");
    }

    #[test]
    fn hostile_scrypt_cost_is_refused_before_any_work() {
        let key = PrivateKey::generate();
        let pem = key.to_encrypted_pem_with(b"p", 10, 8, 1).expect("pem");
        let (_, json) = p256::pkcs8::der::pem::decode_vec(pem.as_bytes()).expect("pem");
        let mut v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        v["kdf"]["params"]["N"] = serde_json::json!(1u64 << 40);
        let text = p256::pkcs8::der::pem::encode_string(
            SIGSTORE_LABEL,
            LineEnding::LF,
            &serde_json::to_vec(&v).expect("json"),
        )
        .expect("pem");
        let e = PrivateKey::from_encrypted_pem(text.as_bytes(), b"p", Path::new("k"))
            .expect_err("too costly");
        assert!(e.to_string().contains("outside what hoist accepts"), "{e}");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = PrivateKey::generate();
        assert_eq!(format!("{key:?}"), "PrivateKey(…)");
    }
}
