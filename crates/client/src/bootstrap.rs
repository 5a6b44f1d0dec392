//! Joining a cluster safely: a join token carries the SHA-256 fingerprint of the cluster CA,
//! so an agent that has only the token and a URL can fetch the CA over an unverified
//! connection and then check it against the pin before trusting anything else.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{ClientError, error_chain};

/// `NVC1.<ca sha256 hex>.<secret>`: what `novacron agent --join-token` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_fingerprint: String,
    pub secret: String,
}

impl JoinToken {
    pub fn parse(s: &str) -> Result<JoinToken, ClientError> {
        let bad = |why: &str| {
            ClientError::Config(format!(
                "invalid join token: {why} (expected NVC1.<fingerprint>.<secret> as printed by `novacron up` or `novacron server`)"
            ))
        };
        let mut parts = s.trim().splitn(3, '.');
        if parts.next() != Some("NVC1") {
            return Err(bad("wrong prefix"));
        }
        let fp = parts.next().ok_or_else(|| bad("no fingerprint"))?;
        let secret = parts.next().ok_or_else(|| bad("no secret"))?;
        if fp.len() != 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("the fingerprint is not 64 hex digits"));
        }
        if secret.len() < 16 {
            return Err(bad("the secret is too short"));
        }
        Ok(JoinToken {
            ca_fingerprint: fp.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NVC1.{}.{}", self.ca_fingerprint, self.secret)
    }
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
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
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Fetches the cluster CA from `server` and returns it only if its fingerprint equals the
/// pinned one. Nothing but the public CA certificate crosses the unverified connection.
pub async fn fetch_pinned_ca(server: &str, fingerprint: &str) -> Result<String, ClientError> {
    novacron_tls::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let url = format!("{}/api/v1/cluster/ca", server.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| ClientError::Unreachable {
            url: server.to_string(),
            why: error_chain(&e),
        })?;
    let pem = resp.text().await.map_err(|e| ClientError::Unreachable {
        url: url.clone(),
        why: error_chain(&e),
    })?;
    let actual = novacron_tls::ca_fingerprint(&pem).map_err(|e| ClientError::Protocol {
        url: url.clone(),
        why: e.to_string(),
    })?;
    if !actual.eq_ignore_ascii_case(fingerprint) {
        return Err(ClientError::Config(format!(
            "the server at {server} presents a cluster CA with fingerprint {actual}, but the join token pins {fingerprint}: wrong server or wrong token"
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_token_round_trips_and_rejects_garbage() {
        let t = JoinToken {
            ca_fingerprint: "ab".repeat(32),
            secret: "s3cr3ts3cr3ts3cr3t".into(),
        };
        assert_eq!(JoinToken::parse(&t.to_string()).unwrap(), t);
        for bad in [
            "",
            "NVC1",
            "NVC2.aa.bbbbbbbbbbbbbbbbbbbb",
            "NVC1.zz.bbbbbbbbbbbbbbbbbbbbb",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }
}
