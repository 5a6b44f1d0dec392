//! The cluster CA: generated once when a cluster is initialised, kept in the store, and used
//! to issue certificates to API servers (server auth) and node agents (server and client
//! auth, for their own endpoint and node-to-node DWCP).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::TlsError;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster certificate authority.
#[derive(Debug, Clone)]
pub struct Ca {
    pub identity: Identity,
}

const CERT_VALIDITY_DAYS: i64 = 3650;
const CA_COMMON_NAME: &str = "NovaCron cluster CA";

fn generate_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

fn validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after =
        (now + std::time::Duration::from_secs(CERT_VALIDITY_DAYS as u64 * 86400)).into();
}

impl Ca {
    /// The CA's subject and key usages. Issuing needs them again, and rebuilding them from
    /// these constants spares an X.509 parser.
    fn params() -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    }

    /// A new self-signed cluster CA.
    pub fn generate() -> Result<Ca, TlsError> {
        let key = KeyPair::generate().map_err(generate_err)?;
        let mut params = Self::params();
        validity(&mut params);
        let cert = params.self_signed(&key).map_err(generate_err)?;
        Ok(Ca {
            identity: Identity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    }

    /// Loads a CA from PEM (as kept in the store).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, TlsError> {
        // Parse both now so a damaged CA is reported at start, not at the first issue.
        KeyPair::from_pem(key_pem).map_err(|e| TlsError::Pem {
            what: "CA key",
            why: e.to_string(),
        })?;
        parse_certs(cert_pem, "CA certificate")?;
        Ok(Ca {
            identity: Identity {
                cert_pem: cert_pem.to_string(),
                key_pem: key_pem.to_string(),
            },
        })
    }

    /// Issues a certificate for `common_name`, valid for the given DNS names and IP
    /// addresses, usable both as a TLS server and as a TLS client.
    pub fn issue(&self, common_name: &str, sans: &[String]) -> Result<Identity, TlsError> {
        let ca_key = KeyPair::from_pem(&self.identity.key_pem).map_err(generate_err)?;
        let issuer = Issuer::new(Self::params(), ca_key);
        let key = KeyPair::generate().map_err(generate_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(generate_err),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params);
        let cert = params.signed_by(&key, &issuer).map_err(generate_err)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn parse_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            why: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError::Pem {
            what: "private key",
            why: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Pem {
            what: "private key",
            why: "no private key found".into(),
        })
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem, "CA certificate")? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    Ok(roots)
}

/// SHA-256 of the CA certificate (DER), hex: what a join token pins.
pub fn ca_fingerprint(ca_pem: &str) -> Result<String, TlsError> {
    let certs = parse_certs(ca_pem, "CA certificate")?;
    // Well-formed PEM is not enough: the certificate itself must parse.
    rustls::RootCertStore::empty()
        .add(certs[0].clone())
        .map_err(|e| TlsError::Pem {
            what: "CA certificate",
            why: e.to_string(),
        })?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, certs[0].as_ref());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS 1.3 server configuration; with `client_ca_pem`, clients must present a
/// certificate signed by that CA (mutual TLS).
pub fn server_config(
    identity: &Identity,
    client_ca_pem: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            parse_certs(&identity.cert_pem, "certificate")?,
            parse_key(&identity.key_pem)?,
        )
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS 1.3 client configuration that trusts only the cluster CA, optionally presenting
/// a client certificate.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?);
    match identity {
        Some(id) => builder
            .with_client_auth_cert(
                parse_certs(&id.cert_pem, "certificate")?,
                parse_key(&id.key_pem)?,
            )
            .map_err(|e| TlsError::Config(e.to_string())),
        None => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_certificates_that_chain_to_the_ca() {
        let ca = Ca::generate().unwrap();
        let id = ca
            .issue("node-a", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        assert!(server_config(&id, Some(&ca.identity.cert_pem)).is_ok());
        assert!(client_config(&ca.identity.cert_pem, Some(&id)).is_ok());
        let fp = ca_fingerprint(&ca.identity.cert_pem).unwrap();
        assert_eq!(fp.len(), 64);
        let reloaded = Ca::from_pem(&ca.identity.cert_pem, &ca.identity.key_pem).unwrap();
        assert_eq!(ca_fingerprint(&reloaded.identity.cert_pem).unwrap(), fp);
    }

    #[test]
    fn refuses_garbage_pem() {
        assert!(Ca::from_pem("not a cert", "not a key").is_err());
        assert!(
            ca_fingerprint("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
