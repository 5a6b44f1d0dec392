//! Who may open or join a session beyond holding a certificate of the cluster CA.
//!
//! A listener made for one purpose (one live migration) names the one peer it expects
//! ([`crate::SessionOptions::peer_name`]): the client certificate, already verified against
//! the cluster CA by TLS, must also be valid for that node name. Both sides may share a
//! [`SessionSecret`] handed out by whoever arranged the session (the control plane): the
//! client then proves it on every stream, in its hello, and the server refuses a stream
//! without the proof. The proof is a keyed BLAKE3 hash over a TLS exporter value, so it is
//! bound to that one TLS connection: it cannot be replayed on another connection nor relayed
//! by a node in the middle, and the secret itself never crosses the wire.
//!
//! The hello (first frame of every stream, client to server) is `session id (16) + stream
//! number (u32 LE) + flags (u32 LE)`, followed by the 32-byte proof when the client holds a
//! secret.

use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::DwcpError;

/// Bytes of a [`SessionSecret`].
pub const SECRET_BYTES: usize = 32;
/// Bytes of the proof of the secret in a hello.
pub const PROOF_BYTES: usize = 32;
/// Hello payload without a proof.
pub const HELLO_BYTES: usize = 24;
/// Hello payload with a proof.
pub const HELLO_WITH_PROOF_BYTES: usize = HELLO_BYTES + PROOF_BYTES;

const KEY_CONTEXT: &str = "novacron dwcp 2026-12 stream proof of the session secret";
const EXPORTER_LABEL: &[u8] = b"EXPORTER-novacron-dwcp-stream-proof";

/// A secret both ends of a session were given out of band. Its `Debug` form hides it; it is
/// never logged and never sent: streams carry a proof derived from it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

impl SessionSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<SessionSecret, DwcpError> {
        let mut b = [0u8; SECRET_BYTES];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut b)
            .map_err(|_| DwcpError::Protocol("the system random generator failed".into()))?;
        Ok(SessionSecret(b))
    }

    /// The secret from its raw bytes.
    pub fn from_bytes(b: [u8; SECRET_BYTES]) -> SessionSecret {
        SessionSecret(b)
    }

    /// Parses the 64-hex-digit form made by [`SessionSecret::to_hex`].
    pub fn from_hex(s: &str) -> Result<SessionSecret, DwcpError> {
        let s = s.as_bytes();
        if s.len() != 2 * SECRET_BYTES {
            return Err(DwcpError::BadSecret(format!(
                "{} characters, expected {}",
                s.len(),
                2 * SECRET_BYTES
            )));
        }
        let mut b = [0u8; SECRET_BYTES];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(DwcpError::BadSecret("not hexadecimal".into()));
            };
            b[i] = hi << 4 | lo;
        }
        Ok(SessionSecret(b))
    }

    /// Lower-case hexadecimal form (64 characters).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The proof that the sender of `hello` on a TLS connection with exporter value
    /// `binding` holds this secret.
    fn proof(&self, binding: &[u8; 32], session: &[u8; 16], flags: u32) -> [u8; PROOF_BYTES] {
        let key = blake3::derive_key(KEY_CONTEXT, &self.0);
        let mut h = blake3::Hasher::new_keyed(&key);
        h.update(binding);
        h.update(session);
        h.update(&flags.to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// Checks the proof carried by `hello` (constant time).
    pub(crate) fn verify(&self, binding: &[u8; 32], hello: &Hello) -> Result<(), DwcpError> {
        let Some(got) = hello.proof else {
            return Err(DwcpError::PeerRefused(
                "the stream carries no proof of the session secret".into(),
            ));
        };
        let want = self.proof(binding, &hello.session, hello.flags);
        // blake3::Hash compares in constant time.
        if blake3::Hash::from(got) != blake3::Hash::from(want) {
            return Err(DwcpError::PeerRefused(
                "the stream's proof of the session secret is wrong".into(),
            ));
        }
        Ok(())
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The exporter value both ends of one TLS connection share (and no one else has).
pub(crate) fn binding<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], DwcpError> {
    conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| DwcpError::Protocol(format!("TLS exporter: {e}")))
}

/// The first frame's payload of every stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Session id, chosen by the client.
    pub session: [u8; 16],
    /// Stream number (informational).
    pub stream: u32,
    /// New session or join an existing one.
    pub flags: u32,
    /// Proof of the session secret, when the client holds one.
    pub proof: Option<[u8; PROOF_BYTES]>,
}

impl Hello {
    /// A hello, with the proof of `secret` on the connection with exporter value `binding`.
    pub(crate) fn new(
        session: [u8; 16],
        flags: u32,
        secret: Option<&SessionSecret>,
        binding: &[u8; 32],
    ) -> Hello {
        Hello {
            session,
            stream: 0,
            flags,
            proof: secret.map(|s| s.proof(binding, &session, flags)),
        }
    }

    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HELLO_WITH_PROOF_BYTES);
        out.extend_from_slice(&self.session);
        out.extend_from_slice(&self.stream.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        if let Some(p) = &self.proof {
            out.extend_from_slice(p);
        }
        out
    }

    /// Parses a hello payload: 24 bytes, or 56 with a proof; anything else is refused.
    pub fn decode(p: &[u8]) -> Result<Hello, DwcpError> {
        if p.len() != HELLO_BYTES && p.len() != HELLO_WITH_PROOF_BYTES {
            return Err(DwcpError::Protocol(format!(
                "hello of {} bytes (expected {HELLO_BYTES} or {HELLO_WITH_PROOF_BYTES})",
                p.len()
            )));
        }
        let mut session = [0u8; 16];
        session.copy_from_slice(&p[..16]);
        let word = |at: usize| u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        let proof = if p.len() == HELLO_WITH_PROOF_BYTES {
            let mut x = [0u8; PROOF_BYTES];
            x.copy_from_slice(&p[HELLO_BYTES..]);
            Some(x)
        } else {
            None
        };
        Ok(Hello {
            session,
            stream: word(16),
            flags: word(20),
            proof,
        })
    }
}

/// Refuses a peer whose (already CA-verified) leaf certificate is not valid for `name`.
pub(crate) fn check_peer_name(cert_der: &[u8], name: &str) -> Result<(), DwcpError> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| DwcpError::PeerRefused(format!("unreadable peer certificate: {e}")))?;
    let want = ServerName::try_from(name)
        .map_err(|_| DwcpError::PeerRefused(format!("{name:?} is not a node name")))?;
    cert.verify_is_valid_for_subject_name(&want).map_err(|_| {
        DwcpError::PeerRefused(format!(
            "the peer's certificate is not for node {name}, the only node this listener accepts"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn secret_round_trips_through_hex_and_hides_in_debug() {
        let s = SessionSecret::generate().unwrap();
        let hex = s.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(SessionSecret::from_hex(&hex).unwrap(), s);
        assert_eq!(SessionSecret::from_hex(&hex.to_uppercase()).unwrap(), s);
        assert!(!format!("{s:?}").contains(&hex[..8]));
        assert!(SessionSecret::from_hex(&hex[..63]).is_err());
        assert!(SessionSecret::from_hex(&format!("{}zz", &hex[..62])).is_err());
    }

    #[test]
    fn proof_depends_on_secret_connection_and_session() {
        let s = SessionSecret::from_bytes([7; 32]);
        let other = SessionSecret::from_bytes([8; 32]);
        let h = Hello::new([1; 16], 1, Some(&s), &[3; 32]);
        assert!(s.verify(&[3; 32], &h).is_ok());
        assert!(other.verify(&[3; 32], &h).is_err(), "wrong secret");
        assert!(s.verify(&[4; 32], &h).is_err(), "another TLS connection");
        let mut moved = h.clone();
        moved.session = [2; 16];
        assert!(s.verify(&[3; 32], &moved).is_err(), "another session");
        let bare = Hello::new([1; 16], 1, None, &[3; 32]);
        assert!(s.verify(&[3; 32], &bare).is_err(), "no proof");
    }

    proptest! {
        /// Fuzz-style: any bytes either decode to a hello that encodes back to the same
        /// bytes, or are refused; nothing panics.
        #[test]
        fn hello_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            match Hello::decode(&bytes) {
                Ok(h) => {
                    prop_assert!(bytes.len() == HELLO_BYTES || bytes.len() == HELLO_WITH_PROOF_BYTES);
                    prop_assert_eq!(h.encode(), bytes);
                }
                Err(_) => prop_assert!(bytes.len() != HELLO_BYTES && bytes.len() != HELLO_WITH_PROOF_BYTES),
            }
        }

        #[test]
        fn hello_round_trips(session: [u8; 16], stream: u32, flags: u32, proof: Option<[u8; 32]>) {
            let h = Hello { session, stream, flags, proof };
            prop_assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        }
    }
}
