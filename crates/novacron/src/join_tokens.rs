//! `novacron join-token create | list | revoke`: the tokens that let new nodes register.
//! The token is printed once, at creation; the control plane keeps only its hash.

use clap::Subcommand;
use novacron_api_types::join_token::{JoinTokenCreateRequest, JoinTokenInfo};

use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum JoinTokenCommand {
    /// Mint a join token and print it (this once: only its hash is kept).
    Create {
        /// How long it registers nodes, e.g. 30m, 24h, 7d (at most 365d).
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: u64,
        /// Register exactly one node with it.
        #[arg(long)]
        single_use: bool,
        /// A label shown by `join-token list`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Join tokens: id, name, created, expires, single-use, used (never the secrets).
    List,
    /// Revoke a join token by id: it registers no more nodes.
    Revoke {
        /// The join token's id (jt-...).
        id: String,
    },
}

/// A duration as `<number><unit>` (s, m, h, d; a bare number is seconds), in seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 30m, 24h or 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is not a usable duration"))
}

fn when(t: Option<u64>) -> String {
    match t {
        Some(t) => chrono_free_utc(t),
        None => "-".into(),
    }
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds.
fn chrono_free_utc(t: u64) -> String {
    let secs = t % 86_400;
    let (y, m, d) = novacron_backup::util::civil_from_days((t / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

fn rows(tokens: &[JoinTokenInfo]) -> Vec<Vec<String>> {
    tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone().unwrap_or_else(|| "-".into()),
                t.created_at.map(output::ago).unwrap_or_else(|| "-".into()),
                when(t.expires_at),
                if t.single_use { "yes" } else { "no" }.into(),
                match &t.used_by {
                    Some(n) => format!("yes ({n})"),
                    None => "no".into(),
                },
                t.state.clone(),
            ]
        })
        .collect()
}

const HEADERS: [&str; 7] = [
    "ID",
    "NAME",
    "CREATED",
    "EXPIRES",
    "SINGLE-USE",
    "USED",
    "STATE",
];

pub async fn run(cmd: JoinTokenCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    match cmd {
        JoinTokenCommand::Create {
            ttl,
            single_use,
            name,
        } => {
            let created = c
                .join_token_create(&JoinTokenCreateRequest {
                    name,
                    ttl_seconds: Some(ttl),
                    single_use,
                })
                .await?;
            match out {
                Format::Json => println!("{}", serde_json::to_string_pretty(&created)?),
                Format::Table => {
                    println!("{}", created.token);
                    eprintln!(
                        "join token {} ({}), expires {}: shown only now; join a node with `novacron agent --server URL --join-token TOKEN --name NAME`",
                        created.info.id,
                        if created.info.single_use {
                            "single use"
                        } else {
                            "reusable"
                        },
                        when(created.info.expires_at)
                    );
                }
            }
            Ok(())
        }
        JoinTokenCommand::List => {
            let tokens = c.join_token_list().await?;
            output::print(out, &tokens, &HEADERS, || rows(&tokens))
        }
        JoinTokenCommand::Revoke { id } => {
            let t = c.join_token_revoke(&id).await?;
            output::print_details(out, &t, || {
                vec![("revoked", t.id.clone()), ("state", t.state.clone())]
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("24h"), Ok(86_400));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("5s"), Ok(5));
        for bad in ["", "h", "0h", "1w", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_print_in_utc() {
        assert_eq!(chrono_free_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(chrono_free_utc(1_796_256_000), "2026-12-03 00:00 UTC");
    }
}
