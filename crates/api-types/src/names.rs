//! Resource names: what a VM, node, image or project may be called.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {why}")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub why: &'static str,
}

/// Names are DNS labels: 1–63 characters of a–z, 0–9 and '-', starting with a letter and
/// not ending with '-'. They become host names, file names and store keys, so nothing else
/// is allowed.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    let err = |why| NameError {
        kind,
        name: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(err("it is empty"));
    }
    if name.len() > 63 {
        return Err(err("it is longer than 63 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(err("it must start with a lowercase letter"));
    }
    if name.ends_with('-') {
        return Err(err("it must not end with '-'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err("use only lowercase letters, digits and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["web1", "a", "node-b", "x-1-2"] {
            assert!(validate_name("vm", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "", "1web", "Web", "web_1", "web-", "-web", "a/b", "..", "we b", "é",
        ] {
            assert!(validate_name("vm", bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("vm", &"a".repeat(64)).is_err());
        let e = validate_name("vm", "Web").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid vm name \"Web\": it must start with a lowercase letter"
        );
    }
}
