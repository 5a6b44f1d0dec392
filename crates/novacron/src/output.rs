//! Output for humans (aligned tables) and scripts (`-o json`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Prints `value` as JSON, or as the table `rows` with `headers`.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    headers: &[&str],
    rows: impl FnOnce() -> Vec<Vec<String>>,
) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Table => print!("{}", table(headers, &rows())),
    }
    Ok(())
}

/// Prints key/value pairs of one resource (human) or the resource (JSON).
pub fn print_details<T: Serialize>(
    format: Format,
    value: &T,
    pairs: impl FnOnce() -> Vec<(&'static str, String)>,
) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Table => {
            let pairs = pairs();
            let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in pairs {
                println!("{k:<w$}  {v}");
            }
        }
    }
    Ok(())
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// "3m ago", "2h ago" ...
pub fn ago(unix: u64) -> String {
    if unix == 0 {
        return "never".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let d = now.saturating_sub(unix);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

/// An error as `-o json` prints it on stderr: `{"code","message"}`, like the API's.
pub fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({"code": code, "message": message}).to_string()
}

/// The API error code of a failed command: the server's when it answered with an error,
/// `unavailable` when no server could be reached, else `internal`... or what fits best.
pub fn error_code(e: &anyhow::Error) -> &'static str {
    use novacron_api_types::ErrorCode;
    use novacron_client::ClientError;
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::Api(api) => match api.code {
                    ErrorCode::InvalidArgument => "invalid_argument",
                    ErrorCode::Unauthenticated => "unauthenticated",
                    ErrorCode::PermissionDenied => "permission_denied",
                    ErrorCode::NotFound => "not_found",
                    ErrorCode::MethodNotAllowed => "method_not_allowed",
                    ErrorCode::AlreadyExists => "already_exists",
                    ErrorCode::Conflict => "conflict",
                    ErrorCode::NoCapacity => "no_capacity",
                    ErrorCode::PayloadTooLarge => "payload_too_large",
                    ErrorCode::UnsupportedMediaType => "unsupported_media_type",
                    ErrorCode::Unavailable => "unavailable",
                    ErrorCode::Internal => "internal",
                },
                ClientError::Unreachable { .. } => "unavailable",
                ClientError::Config(_) => "invalid_argument",
                _ => "internal",
            };
        }
    }
    "internal"
}

/// Whether raw command-line arguments ask for `-o json` (for errors before they parse).
pub fn json_requested(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        matches!(a.as_str(), "-ojson" | "--output=json" | "-o=json")
            || (matches!(a.as_str(), "-o" | "--output")
                && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_json_mode_carry_the_api_code() {
        let e = anyhow::Error::new(novacron_client::ClientError::Api(
            novacron_api_types::ApiError::not_found("no VM named \"x\""),
        ))
        .context("vm show");
        assert_eq!(error_code(&e), "not_found");
        let v: serde_json::Value =
            serde_json::from_str(&error_json(error_code(&e), "vm show: no VM")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "not_found", "message": "vm show: no VM"})
        );
        assert_eq!(error_code(&anyhow::anyhow!("disk full")), "internal");
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(json_requested(&args("vm list -o json")));
        assert!(json_requested(&args("--output=json vm list")));
        assert!(!json_requested(&args("vm show json")));
    }

    #[test]
    fn aligns_columns() {
        let t = table(
            &["NAME", "STATE"],
            &[
                vec!["web1".into(), "running".into()],
                vec!["a".into(), "stopped".into()],
            ],
        );
        assert_eq!(t, "NAME  STATE\nweb1  running\na     stopped\n");
    }
}
