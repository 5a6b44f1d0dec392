//! VM labels (`key=value` pairs an operator attaches to find VMs again) and the selectors
//! that filter by them (`vm list --selector role=web,tier`). The syntax is checked here so
//! the CLI and the control plane refuse the same inputs with the same words.

use std::collections::BTreeMap;

use crate::validate::Invalid;

/// Longest label key or value.
pub const MAX_LABEL_PART_BYTES: usize = 63;
/// Most labels one VM may carry.
pub const MAX_LABELS: usize = 64;
/// Longest VM description.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// A VM's labels, ordered by key.
pub type Labels = BTreeMap<String, String>;

/// A key: 1-63 of `A-Z a-z 0-9 . _ - /`, starting and ending with a letter or digit.
pub fn label_key(key: &str) -> Result<(), Invalid> {
    let ok = !key.is_empty()
        && key.len() <= MAX_LABEL_PART_BYTES
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid label key {key:?}: 1-{MAX_LABEL_PART_BYTES} letters, digits, '.', '_', '-' or '/', starting and ending with a letter or digit"
        )))
    }
}

/// A value: empty, or like a key without '/'.
pub fn label_value(key: &str, value: &str) -> Result<(), Invalid> {
    let ok = value.is_empty()
        || (value.len() <= MAX_LABEL_PART_BYTES
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid value {value:?} for label {key}: up to {MAX_LABEL_PART_BYTES} letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
        )))
    }
}

/// Every label of a set, and how many there are.
pub fn labels(labels: &Labels) -> Result<(), Invalid> {
    if labels.len() > MAX_LABELS {
        return Err(Invalid(format!(
            "a VM carries at most {MAX_LABELS} labels, got {}",
            labels.len()
        )));
    }
    for (k, v) in labels {
        label_key(k)?;
        label_value(k, v)?;
    }
    Ok(())
}

/// `--label k=v` as given on the command line.
pub fn parse_label(s: &str) -> Result<(String, String), Invalid> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Invalid(format!(
            "invalid label {s:?}: expected KEY=VALUE, e.g. role=web"
        )));
    };
    label_key(k)?;
    label_value(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// A description: printable text (line breaks allowed), at most 1 KiB.
pub fn description(d: &str) -> Result<(), Invalid> {
    if d.len() > MAX_DESCRIPTION_BYTES {
        return Err(Invalid(format!(
            "a description is at most {MAX_DESCRIPTION_BYTES} bytes, got {}",
            d.len()
        )));
    }
    if d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Invalid(
            "a description must not contain control characters (other than line breaks)".into(),
        ));
    }
    Ok(())
}

/// A snapshot name: like a label key without '/', at most 63 bytes.
pub fn snapshot_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= MAX_LABEL_PART_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid snapshot name {name:?}: 1-{MAX_LABEL_PART_BYTES} letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorTerm {
    /// `key=value`: the label is present with this value.
    Equals(String, String),
    /// `key!=value`: the label is absent or has another value.
    NotEquals(String, String),
    /// `key`: the label is present (any value).
    Exists(String),
}

/// A label selector: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<SelectorTerm>);

impl Selector {
    /// Parses `k=v,k2!=v2,k3`; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Selector, Invalid> {
        let mut terms = vec![];
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let t = if let Some((k, v)) = term.split_once("!=") {
                label_key(k)?;
                label_value(k, v)?;
                SelectorTerm::NotEquals(k.into(), v.into())
            } else if let Some((k, v)) = term.split_once('=') {
                label_key(k)?;
                label_value(k, v)?;
                SelectorTerm::Equals(k.into(), v.into())
            } else {
                label_key(term).map_err(|e| {
                    Invalid(format!(
                        "{e} (a selector is KEY=VALUE, KEY!=VALUE or KEY, joined by commas)"
                    ))
                })?;
                SelectorTerm::Exists(term.into())
            };
            terms.push(t);
        }
        Ok(Selector(terms))
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|t| match t {
            SelectorTerm::Equals(k, v) => labels.get(k) == Some(v),
            SelectorTerm::NotEquals(k, v) => labels.get(k) != Some(v),
            SelectorTerm::Exists(k) => labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_refuse_bad_syntax() {
        assert_eq!(
            parse_label("role=web").unwrap(),
            ("role".into(), "web".into())
        );
        assert_eq!(
            parse_label("example.com/tier=").unwrap(),
            ("example.com/tier".into(), "".into())
        );
        for bad in [
            "role",
            "=web",
            "ro le=web",
            "role=we/b",
            "-x=1",
            "k=v-",
            "k=ä",
        ] {
            assert!(parse_label(bad).is_err(), "{bad} accepted");
        }
        let long = "a".repeat(64);
        assert!(parse_label(&format!("{long}=1")).is_err());
        let many: Labels = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(labels(&many).unwrap_err().0.contains("at most 64"));
    }

    #[test]
    fn selectors_match_every_term() {
        let l: Labels = [("role", "web"), ("tier", "front")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let sel = |s: &str| Selector::parse(s).unwrap();
        assert!(sel("").matches(&l));
        assert!(sel("role=web").matches(&l));
        assert!(sel("role=web, tier").matches(&l));
        assert!(!sel("role=db").matches(&l));
        assert!(!sel("role=web,env").matches(&l));
        assert!(sel("env!=prod").matches(&l));
        assert!(!sel("tier!=front").matches(&l));
        assert!(Selector::parse("role==web").is_err());
        assert!(Selector::parse("bad key").is_err());
    }

    #[test]
    fn descriptions_are_printable_and_short() {
        assert!(description("web front end\nsecond line").is_ok());
        assert!(description("bell\u{7}").is_err());
        assert!(description(&"x".repeat(1025)).is_err());
    }
}
