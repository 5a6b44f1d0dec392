//! TLS for every NovaCron endpoint: the cluster CA and the certificates it issues to control
//! plane servers and node agents (told apart by a marker that clients check, see the `pki`
//! module), rustls configurations built from PEM, and serving an axum router over HTTPS (with
//! HTTP upgrades, which console attach uses) under connection limits that keep the process's
//! file descriptors for its own work.

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod der;
pub mod fd_pass;
pub mod limits;
mod pki;
mod serve;

pub use der::certificate_serial;
pub use limits::{ServeLimits, open_file_limit, raise_open_file_limit};
pub use pki::{
    CONTROL_PLANE_EKU, Ca, Identity, IssuedCert, NODE_EKU, ReloadableCert, api_server_config,
    ca_fingerprint, client_config, is_node_dns_name, node_client_config, reloadable_server_config,
    server_config,
};
pub use serve::{PeerCertificate, ServeHandle, serve_https, serve_https_with};

/// Errors from certificate handling and TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("invalid PEM ({what}): {why}")]
    Pem { what: &'static str, why: String },
    #[error("TLS configuration rejected: {0}")]
    Config(String),
}

/// Installs aws-lc-rs as the process-wide rustls provider (X25519MLKEM768 preferred, X25519
/// as the classical fallback). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
