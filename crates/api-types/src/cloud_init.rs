//! Checks of the cloud-init data a user hands to `vm create --user-data/--vendor-data`: it
//! must be a cloud-config document (the `#cloud-config` header and one YAML mapping) of at
//! most 64 KiB, so a typo is refused at create time instead of being silently ignored by
//! cloud-init inside the guest at first boot.
//!
//! The YAML is parsed with `saphyr-parser` (an event parser: no tree is built and no Rust
//! types are involved, which is all a syntax check needs).

use saphyr_parser::{Event, Parser};

use crate::validate::Invalid;

/// Largest user-data or vendor-data file.
pub const MAX_CLOUD_INIT_BYTES: usize = 64 << 10;

/// Checks `text`, given as `flag` (e.g. `--user-data`), is a cloud-config of at most 64 KiB.
pub fn cloud_config(flag: &str, text: &str) -> Result<(), Invalid> {
    if text.len() > MAX_CLOUD_INIT_BYTES {
        return Err(Invalid(format!(
            "{flag} is {} bytes; at most {MAX_CLOUD_INIT_BYTES} (64 KiB) are allowed",
            text.len()
        )));
    }
    let first = text.lines().next().unwrap_or("").trim_end();
    if first != "#cloud-config" {
        return Err(Invalid(format!(
            "{flag} must be a cloud-config: its first line must be `#cloud-config`, got {:?}",
            first.chars().take(40).collect::<String>()
        )));
    }
    let mut documents = 0;
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| Invalid(format!("{flag} is not valid YAML: {e}")))?;
        match event {
            Event::DocumentStart(_) => documents += 1,
            Event::MappingStart(..)
            | Event::SequenceStart(..)
            | Event::Scalar(..)
            | Event::Alias(_)
                if depth == 0 =>
            {
                if !matches!(event, Event::MappingStart(..)) {
                    return Err(Invalid(format!(
                        "{flag} must be a YAML mapping (`key: value` lines) at the top (line {})",
                        span.start.line()
                    )));
                }
                depth += 1;
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if documents > 1 {
        return Err(Invalid(format!(
            "{flag} holds {documents} YAML documents; cloud-config is one"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_configs_pass_and_other_text_is_refused() {
        let ok = "#cloud-config\npackages: [htop]\nwrite_files:\n  - path: /etc/motd\n    content: |\n      hello\n";
        assert!(cloud_config("--user-data", ok).is_ok());
        assert!(cloud_config("--user-data", "#cloud-config\n").is_ok());
        let e = cloud_config("--user-data", "#!/bin/sh\necho hi\n").unwrap_err();
        assert!(e.0.contains("#cloud-config"), "{e}");
        let e = cloud_config("--user-data", "#cloud-config\nkey: [unclosed\n").unwrap_err();
        assert!(e.0.contains("not valid YAML"), "{e}");
        let e = cloud_config("--vendor-data", "#cloud-config\n- a\n- b\n").unwrap_err();
        assert!(
            e.0.contains("mapping") && e.0.contains("--vendor-data"),
            "{e}"
        );
        let e = cloud_config("--user-data", "#cloud-config\na: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.0.contains("2 YAML documents"), "{e}");
        let big = format!(
            "#cloud-config\nx: \"{}\"\n",
            "a".repeat(MAX_CLOUD_INIT_BYTES)
        );
        let e = cloud_config("--user-data", &big).unwrap_err();
        assert!(e.0.contains("64 KiB"), "{e}");
    }
}
