//! rustls client configurations for one registry host.
//!
//! Trusted roots: the Mozilla set (`webpki-roots`), the system bundle
//! (`/etc/ssl/certs/ca-certificates.crt`) when present, and the `*.crt` files of the host's
//! certificate directory. A client certificate is a `*.cert` file with the `*.key` of the same
//! stem. The directory is `--cert-dir` when given, else the first of
//! `/etc/containers/certs.d/HOST[:PORT]`, `~/.config/containers/certs.d/HOST[:PORT]` and
//! `/etc/docker/certs.d/HOST[:PORT]` that exists (containers-certs.d(5)).
//!
//! `--tls-verify=false` (or `insecure` in registries.conf) gives a configuration that accepts
//! any server certificate: signatures are still checked, identities are not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::RegistryError;

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate directory for `host`, if any.
fn cert_dir(host: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = explicit {
        return Some(d.to_path_buf());
    }
    let mut dirs = vec![PathBuf::from("/etc/containers/certs.d").join(host)];
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        dirs.push(
            PathBuf::from(h)
                .join(".config/containers/certs.d")
                .join(host),
        );
    }
    dirs.push(PathBuf::from("/etc/docker/certs.d").join(host));
    dirs.into_iter().find(|d| d.is_dir())
}

/// A configuration for `host`: verifying (`insecure == false`) or not.
pub(crate) fn config(
    host: &str,
    insecure: bool,
    explicit_dir: Option<&Path>,
) -> Result<Arc<ClientConfig>, RegistryError> {
    let err = |reason: String| RegistryError::Tls {
        registry: host.to_string(),
        reason,
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?;
    let dir = cert_dir(host, explicit_dir);
    if let Some(d) = explicit_dir {
        if !d.is_dir() {
            return Err(err(format!(
                "certificate directory `{}` does not exist",
                d.display()
            )));
        }
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if Path::new(SYSTEM_BUNDLE).is_file() {
        if let Ok(iter) = CertificateDer::pem_file_iter(SYSTEM_BUNDLE) {
            for c in iter.flatten() {
                // a certificate of the bundle rustls cannot use is skipped, as other clients do
                let _ = roots.add(c);
            }
        }
    }
    let mut client_pair = None;
    if let Some(d) = &dir {
        let entries = std::fs::read_dir(d)
            .map_err(|e| err(format!("`{}`: {e}", d.display())))?
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>();
        for p in &entries {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let certs = CertificateDer::pem_file_iter(p)
                        .map_err(|e| err(format!("`{}`: {e}", p.display())))?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| err(format!("`{}`: {e}", p.display())))?;
                    if certs.is_empty() {
                        return Err(err(format!("`{}` holds no certificate", p.display())));
                    }
                    for c in certs {
                        roots
                            .add(c)
                            .map_err(|e| err(format!("`{}`: {e}", p.display())))?;
                    }
                }
                Some("cert") => {
                    let key = p.with_extension("key");
                    if !key.is_file() {
                        return Err(err(format!(
                            "client certificate `{}` has no key `{}`",
                            p.display(),
                            key.display()
                        )));
                    }
                    let chain = CertificateDer::pem_file_iter(p)
                        .map_err(|e| err(format!("`{}`: {e}", p.display())))?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| err(format!("`{}`: {e}", p.display())))?;
                    // the key's content never reaches a message, only its path
                    let k = PrivateKeyDer::from_pem_file(&key).map_err(|_| {
                        err(format!("`{}` is not a PEM private key", key.display()))
                    })?;
                    client_pair = Some((chain, k));
                }
                Some("key") if !p.with_extension("cert").is_file() => {
                    return Err(err(format!(
                        "key `{}` has no client certificate `{}`",
                        p.display(),
                        p.with_extension("cert").display()
                    )));
                }
                _ => {}
            }
        }
    }
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let config = match client_pair {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| err(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (`--tls-verify=false`), still checking handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
