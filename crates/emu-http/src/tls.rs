//! Optional HTTPS listeners (the vendor's Java puller calls QueryTokenForMnsQueue over HTTPS
//! only, and its newest version also MNS). Pure Rust: rustls with the `ring` provider.
//!
//! [`self_signed`] makes, on first start, a local CA and a server certificate signed by it in a
//! directory (`<data-dir>/tls/` or a temporary one) and reuses them afterwards:
//!
//! * `ca.pem`: the certificate to trust (`keytool -importcert -file ca.pem …`,
//!   `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, …)
//! * `cert.pem` (server certificate + CA), `key.pem` (its private key)
//!
//! [`from_pem_files`] serves a configured certificate instead. [`serve`] runs an axum router on
//! a TCP listener behind TLS (the serve loop is [`crate::listener`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
pub use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::listener::ServeOptions;

/// Host names and addresses the generated certificate is valid for (plus the caller's).
pub const DEFAULT_HOSTS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "dyvmsapi.aliyuncs.com",
    "dybaseapi.aliyuncs.com",
    "*.mns.cn-hangzhou.aliyuncs.com",
    "*.mns.cn-hangzhou-internal.aliyuncs.com",
    "*.mns.cn-hangzhou-internal-vpc.aliyuncs.com",
];

/// Why the TLS listeners cannot have a certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where a generated certificate lives.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub dir: PathBuf,
    /// What clients must trust.
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True when this start generated them (false: reused).
    pub generated: bool,
}

/// The default directory for the generated certificate without a data dir.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("alicom-emu-tls")
}

/// Loads `dir/cert.pem` + `dir/key.pem`, generating them (and `dir/ca.pem`) first if missing.
pub fn self_signed(dir: &Path, extra_hosts: &[String]) -> Result<(Arc<ServerConfig>, TlsFiles), TlsError> {
    let files = TlsFiles {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        generated: false,
    };
    let files = if files.cert.is_file() && files.key.is_file() {
        files
    } else {
        generate(&files, extra_hosts)?;
        TlsFiles { generated: true, ..files }
    };
    let config = from_pem_files(&files.cert, &files.key)?;
    Ok((config, files))
}

fn generate(files: &TlsFiles, extra_hosts: &[String]) -> Result<(), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(&files.dir).map_err(|source| TlsError::Write { path: files.dir.clone(), source })?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "alicom-emu local CA");
    ca.distinguished_name.push(DnType::OrganizationName, "alicom-emu");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect();
    for h in extra_hosts {
        if !h.is_empty() && !hosts.contains(h) {
            hosts.push(h.clone());
        }
    }
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(hosts)?;
    leaf.distinguished_name.push(DnType::CommonName, "alicom-emu");
    leaf.is_ca = IsCa::NoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_params(&ca, &ca_key);
    let cert = leaf.signed_by(&key, &issuer)?;

    let write = |path: &Path, content: String| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, content)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| TlsError::Write { path: path.to_path_buf(), source })
    };
    write(&files.ca_cert, ca_cert.pem())?;
    write(&files.key, key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600));
    }
    // Written last: its presence means the set is complete.
    write(&files.cert, format!("{}{}", cert.pem(), ca_cert.pem()))?;
    Ok(())
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|source| read_error(cert, source))?
        .collect::<Result<_, _>>()
        .map_err(|source| read_error(cert, source))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| read_error(key, source))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_error(path: &Path, source: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Read { path: path.to_path_buf(), source }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, with the default
/// [`ServeOptions`]; see [`crate::listener::serve`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    crate::listener::serve(listener, router, ServeOptions { tls: Some(config), ..ServeOptions::default() }, shutdown)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = std::env::temp_dir().join(format!("emu-mns-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (_, first) = self_signed(&dir, &["emu.example".to_string()]).unwrap();
        assert!(first.generated);
        assert!(first.ca_cert.is_file() && first.cert.is_file() && first.key.is_file());
        let pem = std::fs::read_to_string(&first.cert).unwrap();
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "server certificate + CA");
        let (_, second) = self_signed(&dir, &[]).unwrap();
        assert!(!second.generated);
        assert_eq!(std::fs::read_to_string(&second.cert).unwrap(), pem);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
