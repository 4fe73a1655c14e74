//! TLS for SIP (RFC 3261 §26.2): the server's certificate, reloaded from its PEM files when
//! they change, and the client settings for connections we open to carriers.
//!
//! rustls with the `ring` provider throughout (aws-lc-rs would need cmake to build). The
//! sockets and the handshakes themselves are the transport's; this module only holds keys
//! and trust.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How often, at most, a new handshake looks at the files' modification times.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The crypto provider everything here uses.
// rustls 0.23.48 deprecates the ring provider because it has no post-quantum key exchange;
// aws-lc-rs, which has, needs cmake to build, which our machines lack. SIP peers (desk phones,
// carriers' SBCs) offer classical groups only today; move when aws-lc-rs can be built.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What identifies one version of the certificate and key files: their modification times
/// and sizes (a copy over the old file within the same clock tick still changes the size
/// or, failing that, the next write will be seen).
type FileStamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> FileStamp {
    let one = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    [one(cert), one(key)]
}

/// The server's certificate chain and key, from PEM files, swapped for a new version when
/// the files change (checked at most once a second, when a handshake begins); a file that
/// does not load is logged and the certificate in use is kept.
pub struct ServerCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// When the files were last looked at, and what they were when last loaded.
    checked: Mutex<(Instant, FileStamp)>,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ServerCertificate {
    /// Loads the certificate chain (`cert`, PEM, leaf first) and its private key (`key`,
    /// PEM: PKCS#8, PKCS#1 or SEC1); an error names the file.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let seen = stamp(cert, key);
        let certified = load_certified_key(cert, key)?;
        Ok(Self {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: ArcSwap::from_pointee(certified),
            checked: Mutex::new((Instant::now(), seen)),
        })
    }

    /// Loads the files again if they changed since the last load and `now` is a second or
    /// more after the last look. Cheap otherwise: the accept loop calls it per connection.
    pub fn refresh_if_changed(&self, now: Instant) {
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(checked.0) < RELOAD_CHECK_INTERVAL {
            return;
        }
        checked.0 = now;
        let seen = stamp(&self.cert_path, &self.key_path);
        if seen == checked.1 {
            return;
        }
        match load_certified_key(&self.cert_path, &self.key_path) {
            Ok(certified) => {
                self.current.store(Arc::new(certified));
                checked.1 = seen;
                crate::telemetry::count(crate::telemetry::TLS_CERTIFICATE_RELOADS_TOTAL);
                tracing::info!(certificate = %self.cert_path.display(), "TLS certificate reloaded");
            }
            // Half-written files (the key not yet replaced) land here too; the stamp stays
            // old, so the next look tries again.
            Err(err) => {
                tracing::warn!("TLS certificate not reloaded, the one in use is kept: {err:#}")
            }
        }
    }

    /// Whether this certificate is read from `cert` and `key` (paths as configured).
    pub fn is_loaded_from(&self, cert: &Path, key: &Path) -> bool {
        self.cert_path == cert && self.key_path == key
    }

    /// The server configuration for the listener, answering every handshake with the
    /// certificate in force at that moment.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The certificate chain and key from two PEM files, checked to belong together.
fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: no certificate in the file", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .with_context(|| format!("{}: unusable private key", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().with_context(|| {
        format!(
            "{} does not hold the key of the certificate in {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}

/// How we check a server we connect to over TLS.
#[derive(Clone)]
pub struct ClientProfile {
    /// The name the certificate must carry, sent as SNI (RFC 6066 §3) when it is a host name.
    pub server_name: ServerName<'static>,
    /// Trust anchors and protocol settings.
    pub config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProfile")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientProfile {
    /// Checks the server's certificate against `ca_file` (PEM, one or more CA certificates)
    /// when given, else against the system's trust store, for the name `host` (a DNS name or
    /// an IP address literal).
    pub fn new(host: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let host = host.trim_matches(|c| c == '[' || c == ']');
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|err| anyhow::anyhow!("{host:?} is not a TLS server name: {err}"))?;
        Ok(Self {
            server_name,
            config: client_config_trusting(ca_file)?,
        })
    }
}

/// Client settings that trust the CA certificates in `ca_file` (PEM) when given, else the
/// system's trust store; for clients that choose the server name themselves (the LDAP
/// client takes it from its URL).
pub fn client_config_trusting(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let roots = match ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots()?,
    };
    client_config(roots)
}

fn client_config(roots: rustls::RootCertStore) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn roots_from_file(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read CA file {}", path.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("{}: not a PEM certificate", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{}: unusable CA certificate", path.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("{}: no CA certificate in the file", path.display());
    }
    Ok(roots)
}

/// The operating system's trust store (Debian: /etc/ssl/certs, kept by ca-certificates, so
/// an admin's `update-ca-certificates` counts), read once and shared.
fn system_roots() -> anyhow::Result<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    let certs = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            tracing::warn!("system trust store: {err}");
        }
        found.certs
    });
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        anyhow::bail!("the system trust store holds no usable CA certificate");
    }
    Ok(roots)
}

/// The default for a TLS destination nobody configured (a phone's connection to reopen for
/// a response, RFC 3261 §18.2.2): the system's trust store, the address as the name.
pub fn default_profile(addr: std::net::SocketAddr) -> anyhow::Result<ClientProfile> {
    ClientProfile::new(&addr.ip().to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_file_is_an_error_naming_it() {
        let err = ServerCertificate::load(
            Path::new("/nonexistent/amt-cert.pem"),
            Path::new("/nonexistent/amt-key.pem"),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/amt-cert.pem"),
            "{err:#}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("amt-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = ServerCertificate::load(&cert, &cert).unwrap_err();
        assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
        let err = ClientProfile::new("carrier.example", Some(&cert)).unwrap_err();
        assert!(format!("{err:#}").contains("no CA certificate"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn client_profiles_take_host_names_and_address_literals() {
        // The roots do not matter for the name; an empty trust store is refused elsewhere.
        let name = |host: &str| {
            ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_string())
                .map(|n| n.to_str().into_owned())
        };
        assert_eq!(name("sip.carrier.example").unwrap(), "sip.carrier.example");
        assert_eq!(name("[2001:db8::1]").unwrap(), "2001:db8::1");
        assert!(name("not a name").is_err());
    }
}
