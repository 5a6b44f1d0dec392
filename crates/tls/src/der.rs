//! Just enough DER to read a certificate's serial number (revocation is by serial), so
//! that no X.509 parser is needed for it.

/// One DER element at the start of `input`: (tag, contents, rest).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT Version` in a TBSCertificate.
const VERSION: u8 = 0xa0;

/// The serial number of a DER certificate as lowercase hex without leading zero bytes (the
/// form [`crate::IssuedCert::serial`] uses); `None` when `der` is not a certificate.
pub fn certificate_serial(der: &[u8]) -> Option<String> {
    let (tag, cert, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (mut tag, mut serial, rest) = element(tbs)?;
    if tag == VERSION {
        (tag, serial, _) = element(rest)?;
    }
    if tag != INTEGER || serial.is_empty() {
        return None;
    }
    while serial.len() > 1 && serial[0] == 0 {
        serial = &serial[1..];
    }
    Some(serial.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_serial_the_ca_wrote() {
        let ca = crate::Ca::generate().unwrap();
        let issued = ca
            .issue_node("n1", &[], &[], std::time::Duration::from_secs(60))
            .unwrap();
        let der = rustls_pemfile::certs(&mut issued.identity.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            certificate_serial(&der).as_deref(),
            Some(issued.serial.as_str())
        );
    }

    #[test]
    fn garbage_has_no_serial() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x82, 0xff],
            &[0x02, 1, 5],
            &[0x30, 2, 0x30, 0],
        ] {
            assert_eq!(certificate_serial(bad), None, "{bad:?}");
        }
    }
}
