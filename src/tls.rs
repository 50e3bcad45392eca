//! rustls configurations: the client side towards `https` upstreams (verification on with system
//! roots or `tls_ca`, or off for Kuscia's self-signed gateways) and the optional listener side.

use crate::config::{ListenerTls, Protocol, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no {what} found in PEM file")]
    Empty { path: String, what: &'static str },
    #[error("{path}: {source}")]
    Pem {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("no trusted root certificates (system store empty and no tls_ca)")]
    NoRoots,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let p = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: p.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: p.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: p,
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let p = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: p.clone(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: p,
            what: "private key",
        },
        source => TlsError::Pem { path: p, source },
    })
}

/// The client configuration for one `https` upstream. ALPN offers what `protocol` allows:
/// http/1.1 for `http1` (Kuscia's listener negotiates none, which rustls accepts), h2 for `h2`,
/// both for `auto`.
pub fn client_config(tls: &UpstreamTls, protocol: Protocol) -> Result<Arc<ClientConfig>, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut cfg = if tls.verify {
        let mut roots = RootCertStore::empty();
        match &tls.ca {
            Some(ca) => {
                for c in read_certs(ca)? {
                    roots.add(c)?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    // Skip certificates rustls cannot parse rather than failing the whole store.
                    let _ = roots.add(c);
                }
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth()
    };
    cfg.alpn_protocols = match protocol {
        Protocol::Http1 | Protocol::H2c => vec![b"http/1.1".to_vec()],
        Protocol::H2 => vec![b"h2".to_vec()],
        Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Arc::new(cfg))
}

/// The listener configuration (`tls: {cert, key}`), ALPN h2 and http/1.1.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The server name to send: `tls_sni`, else the address host (an IP sends no SNI).
pub fn server_name(sni: Option<&str>, host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(sni.unwrap_or(host).to_owned()).ok()
}

/// `tls_verify: false`: accept any certificate, but still check handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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
