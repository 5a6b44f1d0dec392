//! Mutual TLS 1.3 between nodes: both sides present certificates signed by the cluster CA.
//!
//! Key exchange prefers the hybrid post-quantum group X25519MLKEM768 (offered by the aws-lc-rs
//! provider) and falls back to X25519 and P-256. A peer without a certificate signed by the
//! cluster CA fails the handshake, before any DWCP frame flows.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::TlsError;

/// A node's TLS identity: the cluster CA and this node's certificate and key, all PEM.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// The cluster CA certificate (PEM); peers must present certificates it signed.
    pub ca_cert_pem: String,
    /// This node's certificate chain (PEM), leaf first.
    pub cert_pem: String,
    /// This node's private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub key_pem: String,
}

/// Which key-exchange groups to offer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyExchange {
    /// X25519MLKEM768 first, then X25519 and P-256.
    #[default]
    PreferHybrid,
    /// Classical groups only (X25519, P-256): for peers or tests without the hybrid group.
    ClassicalOnly,
}

/// What a finished handshake negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// Key-exchange group, e.g. `X25519MLKEM768`.
    pub key_exchange_group: String,
    /// Cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// Peer's leaf certificate (DER).
    pub peer_certificate_der: Vec<u8>,
}

fn provider(kx: KeyExchange) -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = match kx {
        KeyExchange::PreferHybrid => vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
        ],
        KeyExchange::ClassicalOnly => vec![kx_group::X25519, kx_group::SECP256R1],
    };
    Arc::new(p)
}

impl TlsIdentity {
    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        let cas = certs(&self.ca_cert_pem, "ca_cert_pem")?;
        for ca in cas {
            roots.add(ca).map_err(|e| TlsError::BadPem {
                what: "ca_cert_pem",
                detail: e.to_string(),
            })?;
        }
        Ok(roots)
    }

    fn chain_and_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let chain = certs(&self.cert_pem, "cert_pem")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::MissingPem { what: "key_pem" },
            other => TlsError::BadPem {
                what: "key_pem",
                detail: other.to_string(),
            },
        })?;
        Ok((chain, key))
    }

    /// rustls client configuration: verifies the server against the cluster CA and presents
    /// this node's certificate.
    pub fn client_config(&self, kx: KeyExchange) -> Result<Arc<ClientConfig>, TlsError> {
        let (chain, key) = self.chain_and_key()?;
        let cfg = ClientConfig::builder_with_provider(provider(kx))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(chain, key)?;
        Ok(Arc::new(cfg))
    }

    /// rustls server configuration: requires a client certificate signed by the cluster CA.
    pub fn server_config(&self, kx: KeyExchange) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key) = self.chain_and_key()?;
        let p = provider(kx);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), p.clone())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let cfg = ServerConfig::builder_with_provider(p)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        Ok(Arc::new(cfg))
    }
}

pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        out.push(c.map_err(|e| TlsError::BadPem {
            what,
            detail: e.to_string(),
        })?);
    }
    if out.is_empty() {
        return Err(TlsError::MissingPem { what });
    }
    Ok(out)
}

pub(crate) fn info(conn: &rustls::CommonState) -> TlsInfo {
    TlsInfo {
        key_exchange_group: conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_default(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        peer_certificate_der: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default(),
    }
}
