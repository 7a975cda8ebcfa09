//! Optional TLS on the one listener (rustls, ALPN h2 and http/1.1). The certificate and key
//! are read at start and again on every SIGHUP; a reload that fails keeps the previous pair,
//! so a half-written file never takes the server down.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use crate::error::{Error, Result};

/// The files a TLS configuration is read from, and the one in force.
#[derive(Clone)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls> {
        let config = read(cert, key)?;
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the files; on failure the previous certificate stays in force.
    pub fn reload(&self) -> Result<()> {
        let config = read(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// Reloads on every SIGHUP until the task is aborted.
    pub fn reload_on_sighup(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    tracing::warn!(
                        "cannot listen for SIGHUP; TLS certificates will not be reloaded"
                    );
                    return;
                };
                while hup.recv().await.is_some() {
                    match self.reload() {
                        Ok(()) => {
                            tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded")
                        }
                        Err(e) => tracing::error!(
                            error_id = e.id,
                            cause = %e.cause_chain(),
                            "TLS certificate reload failed; the previous certificate stays in force"
                        ),
                    }
                }
            }
        })
    }
}

fn read(cert: &Path, key: &Path) -> Result<ServerConfig> {
    let unreadable = |what: &str, path: &Path| {
        let message = format!("cannot read the TLS {what} from {}", path.display());
        move |e: rustls::pki_types::pem::Error| {
            Error::invalid_argument("TLS-Read01", message).with_source(e)
        }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(unreadable("certificate", cert))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(unreadable("certificate", cert))?;
    if chain.is_empty() {
        return Err(Error::invalid_argument(
            "TLS-Read02",
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(unreadable("private key", key))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal("TLS-Conf01", "no TLS protocol versions").with_source(e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                Error::invalid_argument(
                    "TLS-Conf02",
                    "the TLS certificate and private key do not make a usable pair",
                )
                .with_source(e)
            })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
