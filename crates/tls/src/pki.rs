//! The cluster CA and the certificates it issues, and the rustls configurations that check
//! them.
//!
//! One self-signed CA per cluster (kept in the store) signs two kinds of leaf certificates,
//! told apart by a private extended-key-usage (EKU) marker that only the CA can put there:
//!
//! - **control-plane certificates** ([`Ca::issue_control_plane`]): server auth plus the
//!   [`CONTROL_PLANE_EKU`] marker; names chosen by the operator of the control plane.
//! - **node certificates** ([`Ca::issue_node`]): server and client auth plus the
//!   [`NODE_EKU`] marker, short-lived, for the agent's endpoint, node-to-node DWCP (mutual
//!   TLS) and nothing else. Their names are chosen by the control plane: the node's name and
//!   the addresses it verified, never a name a registering agent asks for.
//!
//! Every client of the control plane (the CLI through `novacron-client`, agents, replicas)
//! uses [`client_config`], whose verifier accepts a server only if its certificate chains to
//! the pinned cluster CA, names the host dialled, *and* carries the control-plane marker. A
//! node certificate therefore cannot impersonate the control plane, even for a name it holds.
//! The control plane, calling agents, uses [`node_client_config`], which demands the node
//! marker instead.
//!
//! Why a marker and not a second CA: it needs no change to what clients already pinned (the
//! one CA fingerprint in join tokens and client configs), and certificates issued before the
//! marker existed (which lack it) are refused as control-plane certificates at once. The OIDs
//! sit under a private arc; they mean something only under a NovaCron cluster CA, which is
//! the only trust anchor these verifiers accept.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::TlsError;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A node certificate just issued, with what revocation and renewal need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub identity: Identity,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Seconds since the Unix epoch after which the certificate is no longer valid.
    pub not_after_unix: u64,
}

/// The cluster certificate authority.
#[derive(Debug, Clone)]
pub struct Ca {
    pub identity: Identity,
}

/// How long the CA and control-plane certificates last (a control plane issues itself a new
/// one at every start).
const LONG_VALIDITY: Duration = Duration::from_secs(3650 * 86400);
const CA_COMMON_NAME: &str = "NovaCron cluster CA";
/// Clock skew tolerated between the control plane and the machines that check its certificates.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The private arc of NovaCron's EKU markers: 1.3.6.1.4.1.59999.1.
const EKU_ARC: [u64; 8] = [1, 3, 6, 1, 4, 1, 59999, 1];
/// EKU marker of control-plane server certificates (OID 1.3.6.1.4.1.59999.1.1, DER body).
pub const CONTROL_PLANE_EKU: &[u8] = &[0x2b, 6, 1, 4, 1, 0x83, 0xd4, 0x5f, 1, 1];
/// EKU marker of node certificates (OID 1.3.6.1.4.1.59999.1.2, DER body).
pub const NODE_EKU: &[u8] = &[0x2b, 6, 1, 4, 1, 0x83, 0xd4, 0x5f, 1, 2];

fn marker(last: u64) -> ExtendedKeyUsagePurpose {
    let mut oid = EKU_ARC.to_vec();
    oid.push(last);
    ExtendedKeyUsagePurpose::Other(oid)
}

fn generate_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// Sets the validity window (backdated for clock skew) and returns the end, in Unix seconds.
fn validity(params: &mut CertificateParams, lifetime: Duration) -> u64 {
    let now = SystemTime::now();
    let not_after = now + lifetime;
    params.not_before = (now - BACKDATE).into();
    params.not_after = not_after.into();
    not_after
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random positive 128-bit serial number, and its hex form.
fn random_serial() -> Result<(SerialNumber, String), TlsError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| TlsError::Generate("the system random generator failed".into()))?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte, so the hex form is canonical
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok((SerialNumber::from_slice(&bytes), hex))
}

/// Whether `name` may be a DNS name in a node certificate: LDH labels only (so no wildcard,
/// no IP literal), not `localhost` or a name under it.
pub fn is_node_dns_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 253
        || lower == "localhost"
        || lower.ends_with(".localhost")
        || lower.parse::<IpAddr>().is_ok()
    {
        return false;
    }
    lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }) && !lower
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
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
        validity(&mut params, LONG_VALIDITY);
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
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Pem {
            what: "CA key",
            why: e.to_string(),
        })?;
        let certs = parse_certs(cert_pem, "CA certificate")?;
        // The key now lives in a file apart from the certificate: a key of another cluster
        // would issue certificates nobody trusts. The certificate's public key is the raw
        // key inside its SubjectPublicKeyInfo.
        let public = key.public_key_raw();
        if !certs[0].as_ref().windows(public.len()).any(|w| w == public) {
            return Err(TlsError::Pem {
                what: "CA key",
                why: "it does not belong to the cluster CA certificate".into(),
            });
        }
        Ok(Ca {
            identity: Identity {
                cert_pem: cert_pem.to_string(),
                key_pem: key_pem.to_string(),
            },
        })
    }

    fn sign(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        ekus: Vec<ExtendedKeyUsagePurpose>,
        lifetime: Duration,
    ) -> Result<IssuedCert, TlsError> {
        let ca_key = KeyPair::from_pem(&self.identity.key_pem).map_err(generate_err)?;
        let issuer = Issuer::new(Self::params(), ca_key);
        let key = KeyPair::generate().map_err(generate_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = ekus;
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        let not_after_unix = validity(&mut params, lifetime);
        let cert = params.signed_by(&key, &issuer).map_err(generate_err)?;
        Ok(IssuedCert {
            identity: Identity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            serial: serial_hex,
            not_after_unix,
        })
    }

    /// Issues a control-plane server certificate for the given DNS names and IP addresses
    /// (chosen by whoever runs the control plane). It carries [`CONTROL_PLANE_EKU`] and is
    /// not valid for client auth.
    pub fn issue_control_plane(&self, sans: &[String]) -> Result<Identity, TlsError> {
        let sans = sans
            .iter()
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(generate_err),
            })
            .collect::<Result<_, _>>()?;
        let ekus = vec![ExtendedKeyUsagePurpose::ServerAuth, marker(1)];
        Ok(self
            .sign("novacron control plane", sans, ekus, LONG_VALIDITY)?
            .identity)
    }

    /// Issues a node certificate for node `node` (its name is its only DNS name, plus any
    /// in `dns`) and the IP addresses `ips`, valid for `lifetime`. Every name is checked
    /// with [`is_node_dns_name`]: wildcards, IP literals posing as names and `localhost`
    /// are refused. It carries [`NODE_EKU`], never the control-plane marker.
    pub fn issue_node(
        &self,
        node: &str,
        dns: &[String],
        ips: &[IpAddr],
        lifetime: Duration,
    ) -> Result<IssuedCert, TlsError> {
        let mut names = vec![node.to_ascii_lowercase()];
        names.extend(dns.iter().map(|d| d.to_ascii_lowercase()));
        names.dedup();
        let mut sans = Vec::new();
        for name in names {
            if !is_node_dns_name(&name) {
                return Err(TlsError::Generate(format!(
                    "{name:?} cannot be a name in a node certificate (wildcards, IP literals and localhost are refused)"
                )));
            }
            sans.push(SanType::DnsName(name.try_into().map_err(generate_err)?));
        }
        let mut ips = ips.to_vec();
        ips.sort();
        ips.dedup();
        sans.extend(ips.into_iter().map(SanType::IpAddress));
        let ekus = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
            marker(2),
        ];
        self.sign(&format!("node {node}"), sans, ekus, lifetime)
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
    let auth = match client_ca_pem {
        Some(ca) => ClientAuth::Required(ca),
        None => ClientAuth::None,
    };
    build_server_config(identity, auth)
}

/// The control plane's API configuration: TLS 1.3 with `identity`; clients *may* present a
/// certificate of the cluster CA `client_ca_pem` valid for client auth (node certificates),
/// which the API then checks against its revocation list. Clients without one (the CLI)
/// authenticate with bearer tokens only.
pub fn api_server_config(
    identity: &Identity,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    build_server_config(identity, ClientAuth::Optional(client_ca_pem))
}

/// Whether a server asks clients for a certificate of a CA, and whether it must be there.
enum ClientAuth<'a> {
    None,
    Required(&'a str),
    Optional(&'a str),
}

fn build_server_config(
    identity: &Identity,
    auth: ClientAuth<'_>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required(ca) | ClientAuth::Optional(ca) => {
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
            if matches!(auth, ClientAuth::Optional(_)) {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
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

/// A server certificate that can be replaced while serving: agents renew their node
/// certificate without restarting their endpoint.
#[derive(Debug)]
pub struct ReloadableCert(std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>);

fn certified_key(identity: &Identity) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let key = provider()
        .key_provider
        .load_private_key(parse_key(&identity.key_pem)?)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        parse_certs(&identity.cert_pem, "certificate")?,
        key,
    )))
}

impl ReloadableCert {
    pub fn new(identity: &Identity) -> Result<Arc<ReloadableCert>, TlsError> {
        Ok(Arc::new(ReloadableCert(std::sync::RwLock::new(
            certified_key(identity)?,
        ))))
    }

    /// Serves `identity` from the next handshake on.
    pub fn replace(&self, identity: &Identity) -> Result<(), TlsError> {
        let key = certified_key(identity)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A TLS 1.3 server configuration (no client auth) serving whatever `cert` holds.
pub fn reloadable_server_config(
    cert: Arc<ReloadableCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Which kind of NovaCron server a client expects at the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    ControlPlane,
    Node,
}

impl Expected {
    fn eku(self) -> &'static [u8] {
        match self {
            Expected::ControlPlane => CONTROL_PLANE_EKU,
            Expected::Node => NODE_EKU,
        }
    }
}

/// Why a server certificate that chains to the cluster CA was still refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's certificate is signed by the cluster CA but is not a NovaCron {0} certificate"
)]
struct WrongKind(&'static str);

/// The standard WebPKI checks (chain to the cluster CA, validity, server auth, host name),
/// then the NovaCron marker of the expected kind of server.
#[derive(Debug)]
struct MarkedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    anchors: Vec<TrustAnchor<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    expected: Expected,
}

impl MarkedServerVerifier {
    fn new(ca_pem: &str, expected: Expected) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let roots = roots(ca_pem)?;
        let anchors = roots.roots.clone();
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Arc::new(MarkedServerVerifier {
            inner,
            anchors,
            provider,
            expected,
        }))
    }
}

impl ServerCertVerifier for MarkedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let what = match self.expected {
            Expected::ControlPlane => "control-plane",
            Expected::Node => "node",
        };
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::required(self.expected.eku()),
            None,
            None,
        )
        .map_err(|e| {
            tracing::warn!(server = ?server_name, expected = what, error = %e, "server certificate refused");
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                rustls::OtherError(Arc::new(WrongKind(what))),
            ))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn marked_client_config(
    ca_pem: &str,
    identity: Option<&Identity>,
    expected: Expected,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(MarkedServerVerifier::new(ca_pem, expected)?);
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

/// A TLS 1.3 client configuration for talking to the control plane: the server must present
/// a control-plane certificate (with [`CONTROL_PLANE_EKU`]) signed by the cluster CA
/// `ca_pem` for the host dialled. Node certificates are refused. Optionally presents a
/// client certificate.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, TlsError> {
    marked_client_config(ca_pem, identity, Expected::ControlPlane)
}

/// A TLS 1.3 client configuration for the control plane calling node agents: the server
/// must present a node certificate (with [`NODE_EKU`]) signed by the cluster CA for the
/// host dialled.
pub fn node_client_config(ca_pem: &str) -> Result<rustls::ClientConfig, TlsError> {
    marked_client_config(ca_pem, None, Expected::Node)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn issues_certificates_that_chain_to_the_ca() {
        let ca = Ca::generate().unwrap();
        let id = ca
            .issue_node("node-a", &[], &["127.0.0.1".parse().unwrap()], DAY)
            .unwrap();
        assert!(server_config(&id.identity, Some(&ca.identity.cert_pem)).is_ok());
        assert!(client_config(&ca.identity.cert_pem, Some(&id.identity)).is_ok());
        assert_eq!(id.serial.len(), 32);
        let fp = ca_fingerprint(&ca.identity.cert_pem).unwrap();
        assert_eq!(fp.len(), 64);
        let reloaded = Ca::from_pem(&ca.identity.cert_pem, &ca.identity.key_pem).unwrap();
        assert_eq!(ca_fingerprint(&reloaded.identity.cert_pem).unwrap(), fp);
    }

    #[test]
    fn refuses_a_key_of_another_ca() {
        let a = Ca::generate().unwrap();
        let b = Ca::generate().unwrap();
        assert!(Ca::from_pem(&a.identity.cert_pem, &b.identity.key_pem).is_err());
    }

    #[test]
    fn refuses_garbage_pem() {
        assert!(Ca::from_pem("not a cert", "not a key").is_err());
        assert!(
            ca_fingerprint("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }

    #[test]
    fn node_names_are_plain_dns_names() {
        for ok in ["node-a", "n1.example.com", "a"] {
            assert!(is_node_dns_name(ok), "{ok}");
        }
        for bad in [
            "*.example.com",
            "*",
            "localhost",
            "LocalHost",
            "x.localhost",
            "127.0.0.1",
            "1.2.3.4",
            "::1",
            "a..b",
            "-a",
            "a_b",
            "",
        ] {
            assert!(!is_node_dns_name(bad), "{bad}");
        }
        let ca = Ca::generate().unwrap();
        assert!(ca.issue_node("*", &[], &[], DAY).is_err());
        assert!(
            ca.issue_node("node-a", &["*.example.com".into()], &[], DAY)
                .is_err()
        );
        assert!(
            ca.issue_node("node-a", &["localhost".into()], &[], DAY)
                .is_err()
        );
    }

    #[test]
    fn eku_marker_bytes_match_the_arc() {
        // The DER bodies handed to webpki must be the OIDs rcgen writes.
        fn der_body(arcs: &[u64]) -> Vec<u8> {
            let mut out = vec![(arcs[0] * 40 + arcs[1]) as u8];
            for &a in &arcs[2..] {
                let mut groups = vec![(a & 0x7f) as u8];
                let mut v = a >> 7;
                while v > 0 {
                    groups.push((v & 0x7f) as u8 | 0x80);
                    v >>= 7;
                }
                out.extend(groups.iter().rev());
            }
            out
        }
        let mut cp = EKU_ARC.to_vec();
        cp.push(1);
        let mut node = EKU_ARC.to_vec();
        node.push(2);
        assert_eq!(der_body(&cp), CONTROL_PLANE_EKU);
        assert_eq!(der_body(&node), NODE_EKU);
    }

    /// Serves one TLS handshake with `server` on loopback and returns whether a client
    /// with `client` completed it, dialling `name`.
    async fn handshake(server: &Identity, client: rustls::ClientConfig, name: &str) -> bool {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(server, None).unwrap());
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let ok = connector.connect(name, tcp).await.is_ok();
        let _ = srv.await;
        ok
    }

    #[tokio::test]
    async fn control_plane_clients_refuse_node_certificates() {
        let ca = Ca::generate().unwrap();
        let ca_pem = &ca.identity.cert_pem;
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let node = ca
            .issue_node("cp.example.com", &[], &[lo], DAY)
            .unwrap()
            .identity;
        let cp = ca
            .issue_control_plane(&["cp.example.com".into(), "127.0.0.1".into()])
            .unwrap();
        // A node certificate holding the very name and address dialled is still refused.
        for name in ["cp.example.com", "127.0.0.1"] {
            assert!(!handshake(&node, client_config(ca_pem, None).unwrap(), name).await);
            assert!(handshake(&cp, client_config(ca_pem, None).unwrap(), name).await);
        }
        // The control plane calling agents wants the node marker, not the control-plane one.
        assert!(handshake(&node, node_client_config(ca_pem).unwrap(), "127.0.0.1").await);
        assert!(!handshake(&cp, node_client_config(ca_pem).unwrap(), "127.0.0.1").await);
        // A certificate from before the markers existed (server and client auth, no marker).
        let legacy = ca
            .sign(
                "node old",
                vec![SanType::IpAddress(lo)],
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
                DAY,
            )
            .unwrap()
            .identity;
        assert!(!handshake(&legacy, client_config(ca_pem, None).unwrap(), "127.0.0.1").await);
        // Another cluster's control plane is refused too.
        let other = Ca::generate().unwrap();
        let foreign = other.issue_control_plane(&["127.0.0.1".into()]).unwrap();
        assert!(!handshake(&foreign, client_config(ca_pem, None).unwrap(), "127.0.0.1").await);
    }

    #[tokio::test]
    async fn node_certificates_name_only_the_node_and_its_addresses() {
        let ca = Ca::generate().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let node = ca.issue_node("node-a", &[], &[lo], DAY).unwrap().identity;
        let ca_pem = &ca.identity.cert_pem;
        assert!(handshake(&node, node_client_config(ca_pem).unwrap(), "node-a").await);
        assert!(handshake(&node, node_client_config(ca_pem).unwrap(), "127.0.0.1").await);
        assert!(!handshake(&node, node_client_config(ca_pem).unwrap(), "localhost").await);
        assert!(!handshake(&node, node_client_config(ca_pem).unwrap(), "node-b").await);
    }
}
