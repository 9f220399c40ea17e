//! The TLS certificate the WebTransport endpoint serves: a self-signed one made here (what a
//! browser's `serverCertificateHashes` accepts), or an operator's own from PEM files.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The longest validity browsers accept for a certificate pinned by hash
/// (`serverCertificateHashes`): 14 days.
pub const MAX_PINNED_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);

/// How far before "now" a self-signed certificate starts to be valid, so that a client whose
/// clock is a little behind still accepts it.
const BACKDATE: Duration = Duration::from_secs(60);

/// The SHA-256 hash of a certificate's DER encoding: what a browser passes in
/// `serverCertificateHashes` and what a client pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateHash(pub [u8; 32]);

impl CertificateHash {
    /// The hash of `der`.
    pub fn of(der: &[u8]) -> Self {
        CertificateHash(Sha256::digest(der).into())
    }

    /// The hash in lower-case hex (how `openssl x509 -fingerprint` shows it, less the colons).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Why a certificate could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// rcgen refused the parameters or could not sign.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A validity longer than browsers accept for a pinned certificate was asked for.
    #[error("a self-signed certificate may be valid for at most 14 days, not {0:?}")]
    TooLong(Duration),
    /// The certificate file could not be read or holds no certificate.
    #[error("cannot read a PEM certificate from {path}: {error}")]
    CertificateFile {
        /// The file named by `--wt-cert`.
        path: String,
        /// Why.
        error: rustls_pki_types::pem::Error,
    },
    /// The key file could not be read or holds no private key.
    #[error("cannot read a PEM private key from {path}: {error}")]
    KeyFile {
        /// The file named by `--wt-key`.
        path: String,
        /// Why.
        error: rustls_pki_types::pem::Error,
    },
}

/// A certificate chain and its key, ready to serve.
#[derive(Debug)]
pub struct ServedCertificate {
    /// Leaf first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// The leaf's hash.
    pub hash: CertificateHash,
    /// When a self-signed certificate stops being valid; `None` for a loaded one (this crate
    /// does not parse X.509: loaded certificates are verified by clients the ordinary way).
    pub not_after: Option<SystemTime>,
}

impl ServedCertificate {
    /// A fresh self-signed certificate: a new ECDSA P-256 key, valid from a minute before
    /// `now` for `validity` in all (at most [`MAX_PINNED_VALIDITY`]), for `localhost`,
    /// `127.0.0.1` and `::1` plus `extra_names` (host names or IP addresses).
    pub fn self_signed(
        extra_names: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<Self, CertificateError> {
        if validity > MAX_PINNED_VALIDITY {
            return Err(CertificateError::TooLong(validity));
        }
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(extra_names.iter().cloned());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rtchat WebTransport");
        let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
        let not_after = not_before + validity;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let certificate = params.self_signed(&key)?;
        let der = certificate.der().clone();
        Ok(ServedCertificate {
            hash: CertificateHash::of(&der),
            chain: vec![der],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            // rcgen encodes whole seconds: report what the certificate says.
            not_after: Some(truncate_to_seconds(not_after)),
        })
    }

    /// A certificate chain (leaf first) and its private key from PEM files.
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<Self, CertificateError> {
        let certificate_error = |error| CertificateError::CertificateFile {
            path: certificate.display().to_string(),
            error,
        };
        let chain = CertificateDer::pem_file_iter(certificate)
            .map_err(certificate_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(certificate_error)?;
        let Some(leaf) = chain.first() else {
            return Err(certificate_error(
                rustls_pki_types::pem::Error::NoItemsFound,
            ));
        };
        let hash = CertificateHash::of(leaf);
        let key = PrivateKeyDer::from_pem_file(key).map_err(|error| CertificateError::KeyFile {
            path: key.display().to_string(),
            error,
        })?;
        Ok(ServedCertificate {
            chain,
            key,
            hash,
            not_after: None,
        })
    }
}

fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_are_p256_and_short_lived() {
        let now = SystemTime::now();
        let certificate =
            ServedCertificate::self_signed(&["chat.test".to_owned()], MAX_PINNED_VALIDITY, now)
                .expect("a certificate");
        assert_eq!(certificate.chain.len(), 1);
        assert_eq!(certificate.hash, CertificateHash::of(&certificate.chain[0]));
        let not_after = certificate.not_after.expect("an expiry");
        assert!(not_after <= now + MAX_PINNED_VALIDITY);
        assert!(not_after > now + MAX_PINNED_VALIDITY - Duration::from_secs(120));
        // The P-256 OID (1.2.840.10045.3.1.7) and ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
        let der: &[u8] = &certificate.chain[0];
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let ecdsa_sha256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert!(der.windows(p256.len()).any(|w| w == p256));
        assert!(der.windows(ecdsa_sha256.len()).any(|w| w == ecdsa_sha256));
        assert!(der.windows(9).any(|w| w == b"chat.test"));
        let other = ServedCertificate::self_signed(&[], MAX_PINNED_VALIDITY, now).expect("another");
        assert_ne!(
            other.hash, certificate.hash,
            "every certificate has a new key"
        );
    }

    #[test]
    fn validity_past_14_days_is_refused() {
        let result = ServedCertificate::self_signed(
            &[],
            MAX_PINNED_VALIDITY + Duration::from_secs(1),
            SystemTime::now(),
        );
        assert!(matches!(result, Err(CertificateError::TooLong(_))));
    }

    #[test]
    fn pem_files_load_and_bad_ones_say_which() {
        let dir = std::env::temp_dir().join(format!("rtchat-wt-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key");
        let params = rcgen::CertificateParams::new(vec!["chat.test".to_owned()]).expect("params");
        let certificate = params.self_signed(&key).expect("a certificate");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, certificate.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        let loaded = ServedCertificate::from_pem_files(&cert_path, &key_path).expect("loads");
        assert_eq!(loaded.hash, CertificateHash::of(certificate.der()));
        assert_eq!(loaded.not_after, None);

        let swapped = ServedCertificate::from_pem_files(&key_path, &key_path);
        assert!(
            matches!(swapped, Err(CertificateError::CertificateFile { .. })),
            "{swapped:?}"
        );
        let swapped = ServedCertificate::from_pem_files(&cert_path, &cert_path);
        assert!(
            matches!(swapped, Err(CertificateError::KeyFile { .. })),
            "{swapped:?}"
        );
        let missing = ServedCertificate::from_pem_files(&dir.join("nope.pem"), &key_path);
        assert!(missing.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
