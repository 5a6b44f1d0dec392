//! `novacron audit`: list the audit log, verify its hash chain, export it as JSON Lines.
//!
//! `verify` checks on this side what the control plane exported, with the same chain code
//! the control plane appends with ([`novacron_api_types::audit::verify`]), against the
//! stored head and, with `--checkpoints`, the checkpoints an operator kept.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use novacron_api_types::audit::{AuditCheckpoint, AuditRecord, verify};
use novacron_api_types::tenancy::parse_duration_secs;

use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Audit records, oldest first: every change and every refused request.
    #[command(after_help = "Examples:\n  \
        novacron audit list --since 1h\n  \
        novacron --project team-a audit list --user alice -o json")]
    List {
        /// Only requests made with this user's tokens.
        #[arg(long)]
        user: Option<String>,
        /// From this time on: a duration ago (30m, 12h, 7d) or a UTC date or time
        /// (2026-01-01, 2026-01-01T12:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Check the whole hash chain; names the first record that was edited, deleted,
    /// inserted or moved, and exits non-zero.
    #[command(after_help = "Examples:\n  \
        novacron audit verify\n  \
        novacron audit verify --checkpoints /srv/keep/audit-checkpoints.jsonl")]
    Verify {
        /// Checkpoints kept elsewhere (the control plane's `audit-checkpoints.jsonl`, or
        /// its `audit checkpoint` log lines as JSON): the chain must still hold each one.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Every record as JSON Lines, in chain order (what `verify` checks).
    #[command(after_help = "Example:\n  novacron audit export --since 2026-01-01 > audit.jsonl")]
    Export {
        /// From this time on (as for `list`); the whole chain without it.
        #[arg(long)]
        since: Option<String>,
    },
}

pub async fn run(cmd: AuditCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    match cmd {
        AuditCommand::List { user, since, limit } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let project = crate::cli::explicit_project();
            let mut records = vec![];
            let mut after = None;
            loop {
                let page = c
                    .audit_list(
                        project.as_deref(),
                        user.as_deref(),
                        since,
                        after,
                        Some(limit - records.len()),
                    )
                    .await?;
                records.extend(page.records);
                match page.next_after {
                    Some(a) if records.len() < limit => after = Some(a),
                    _ => break,
                }
            }
            const HEADERS: [&str; 7] = [
                "SEQ", "TIME", "ACTOR", "PROJECT", "ACTION", "TARGET", "OUTCOME",
            ];
            output::print(out, &records, &HEADERS, || rows(&records))
        }
        AuditCommand::Verify { checkpoints } => {
            let checkpoints = match &checkpoints {
                Some(path) => read_checkpoints(path)?,
                None => vec![],
            };
            // The head first: records appended meanwhile are after it and ignored below.
            let head = c.audit_head().await?;
            let text = c.audit_export(None).await?;
            let mut records = parse_lines(&text)?;
            let keep = records
                .iter()
                .position(|r| r.seq > head.seq && r.prev == head.hash)
                .unwrap_or(records.len());
            records.truncate(keep);
            match verify(&records, &head, &checkpoints) {
                Ok(v) => output::print_details(out, &v, || {
                    vec![
                        ("result", "the audit chain is intact".to_string()),
                        ("records", v.records.to_string()),
                        ("head", format!("{} {}", v.head.seq, v.head.hash)),
                        ("checkpoints checked", v.checkpoints.to_string()),
                    ]
                }),
                Err(e) => bail!("{e}"),
            }
        }
        AuditCommand::Export { since } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let text = c.audit_export(since).await?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .context("writing the export")?;
            Ok(())
        }
    }
}

fn rows(records: &[AuditRecord]) -> Vec<Vec<String>> {
    records
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                utc(r.time),
                r.actor.clone(),
                r.project.clone().unwrap_or_else(|| "-".into()),
                r.action.clone(),
                r.target.clone(),
                format!("{} {}", r.outcome.as_str(), r.status),
            ]
        })
        .collect()
}

fn parse_lines(text: &str) -> anyhow::Result<Vec<AuditRecord>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("line {} of the export is not an audit record", i + 1))
        })
        .collect()
}

/// Checkpoints, one JSON object per line; lines that are not checkpoints (other log lines)
/// are skipped, so a shipped log can be passed as it is.
fn read_checkpoints(path: &PathBuf) -> anyhow::Result<Vec<AuditCheckpoint>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading checkpoints from {}", path.display()))?;
    let cps: Vec<AuditCheckpoint> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    if cps.is_empty() {
        bail!(
            "{} holds no checkpoints (one JSON object per line: {{\"seq\":…,\"hash\":…,\"time\":…}})",
            path.display()
        );
    }
    Ok(cps)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) from Unix seconds.
fn utc(t: u64) -> String {
    let s = t % 86_400;
    let (y, m, d) = novacron_backup::util::civil_from_days((t / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

/// `--since`: a duration ago (`1h`), a date (`2026-01-01`) or a UTC time
/// (`2026-01-01T12:00:00Z`), as Unix seconds.
pub fn parse_since(s: &str) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(d) = parse_duration_secs(s) {
        return Ok(now.saturating_sub(d));
    }
    let bad = || {
        anyhow::anyhow!(
            "invalid --since {s:?}: use a duration ago (30m, 12h, 7d), a date (2026-01-01) or a UTC time (2026-01-01T12:00:00Z)"
        )
    };
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let num = |x: &str| x.parse::<u32>().map_err(|_| bad());
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = novacron_backup::util::days_from_civil(i64::from(y), m, d) * 86_400;
    if let Some(t) = time {
        let hms: Vec<&str> = t.split(':').collect();
        let (h, mi, se) = match hms.as_slice() {
            [h, mi] => (num(h)?, num(mi)?, 0),
            [h, mi, se] => (num(h)?, num(mi)?, num(se)?),
            _ => return Err(bad()),
        };
        if h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        secs += i64::from(h * 3600 + mi * 60 + se);
    }
    u64::try_from(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_dates_and_times() {
        assert_eq!(parse_since("2026-01-01").unwrap(), 1_767_225_600);
        assert_eq!(parse_since("2026-01-01T12:00:00Z").unwrap(), 1_767_268_800);
        assert_eq!(parse_since("2026-01-01 12:00").unwrap(), 1_767_268_800);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = parse_since("1h").unwrap();
        assert!(now - h >= 3600 && now - h < 3660);
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-01",
            "2026-01-01T25:00",
            "-1h",
        ] {
            let e = parse_since(bad).unwrap_err().to_string();
            assert!(e.contains("invalid --since"), "{bad}: {e}");
        }
        assert_eq!(utc(1_767_268_800 + 61), "2026-01-01 12:01:01");
    }
}
