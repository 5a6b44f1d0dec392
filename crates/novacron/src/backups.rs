//! `novacron backup ...`: repositories, backups, restores, verify / prune / gc, schedules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use novacron_api_types::backup::{
    Backup, BackupCreateRequest, BackupRepo, BackupRepoAddRequest, BackupRestoreRequest,
    BackupSchedule, PruneRequest, RepoLocation, Retention,
};
use novacron_api_types::format_size;

use crate::cli::{client, wait_op};
use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Backup repositories.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Back up a VM now (live when it runs; incremental after the first backup).
    Create {
        /// The VM to back up.
        vm: String,
        /// Repository to write the backup to.
        #[arg(long)]
        repo: String,
        /// Return at once instead of following the backup's progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// List backups (of one VM), oldest first.
    List {
        /// Only this VM's backups.
        vm: Option<String>,
        /// Only backups in this repository.
        #[arg(long)]
        repo: Option<String>,
    },
    /// One backup: its disks, how each was read, sizes.
    Show {
        /// The backup's id.
        id: String,
    },
    /// Restore a backup into a new VM (`--as`) or over its original, stopped VM (`--over`).
    Restore {
        /// The backup's id.
        id: String,
        /// Name of the new VM.
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
        /// Node for the new VM (default: the scheduler's choice).
        #[arg(long)]
        node: Option<String>,
        /// Replace the original VM's disk (the VM must be stopped).
        #[arg(long)]
        over: bool,
        /// Repository holding the backup (default: searched in every repository).
        #[arg(long)]
        repo: Option<String>,
    },
    /// Delete one backup (a project admin's way under `--max-backup-storage`; its chunks go
    /// at the repository's next gc unless other backups use them).
    Delete {
        /// The backup's id.
        id: String,
        /// Repository holding the backup (default: searched in every repository).
        #[arg(long)]
        repo: Option<String>,
    },
    /// Re-read and re-hash a repository; names the backups any damage affects.
    Verify {
        /// The repository's name.
        repo: String,
        /// Also check chunks no backup references.
        #[arg(long)]
        all: bool,
    },
    /// Forget backups the keep rules do not keep (their chunks go at the next gc).
    Prune {
        /// The repository's name.
        repo: String,
        #[command(flatten)]
        keep: KeepArgs,
        /// Only this VM's backups.
        #[arg(long)]
        vm: Option<String>,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete chunks no backup references (never one a running backup still needs).
    Gc {
        /// The repository's name.
        repo: String,
    },
    /// Back up a VM periodically, pruning its backups with the keep rules after each run.
    Schedule {
        /// The VM to back up on a schedule.
        vm: String,
        /// Repository the scheduled backups go to.
        #[arg(long, required_unless_present = "remove")]
        repo: Option<String>,
        /// Interval, e.g. 30m, 6h, 1d.
        #[arg(long, required_unless_present = "remove")]
        every: Option<String>,
        #[command(flatten)]
        keep: KeepArgs,
        /// Remove the VM's schedule.
        #[arg(long)]
        remove: bool,
    },
    /// List schedules.
    Schedules,
}

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Add a repository (created when the location holds none; adopted when it holds one).
    Add {
        /// Name of the repository.
        name: String,
        /// A directory (on one machine, or shared by every node at the same path).
        #[arg(long, conflicts_with = "s3")]
        path: Option<PathBuf>,
        /// S3-compatible storage: s3://BUCKET[/PREFIX]?endpoint=URL&region=R (credentials
        /// from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY where the server and agents run).
        #[arg(long)]
        s3: Option<String>,
        /// Encrypt on the client side (AES-256-GCM) with the key in --key-file.
        #[arg(long, requires = "key_file")]
        encrypt: bool,
        /// Key file (created with a new random key when missing). Keep a copy elsewhere:
        /// without it the backups cannot be read.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List repositories.
    List,
    /// Replicate a repository to another location (another site), blob for blob; an
    /// interrupted sync resumes. The copy opens with the same key file.
    Sync {
        /// The repository to copy.
        name: String,
        /// Directory of the copy.
        #[arg(long, conflicts_with = "s3")]
        path: Option<PathBuf>,
        /// S3 location of the copy.
        #[arg(long)]
        s3: Option<String>,
        /// Register the copy as a repository of this name.
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
        /// Also remove from the copy the backups the source no longer has.
        #[arg(long)]
        prune_target: bool,
    },
}

#[derive(Args, Debug, Default)]
pub struct KeepArgs {
    /// Keep the newest N backups.
    #[arg(long, default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest backup of each of the last N hours.
    #[arg(long, default_value_t = 0)]
    keep_hourly: u32,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, default_value_t = 0)]
    keep_daily: u32,
    /// Keep the newest backup of each of the last N weeks.
    #[arg(long, default_value_t = 0)]
    keep_weekly: u32,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, default_value_t = 0)]
    keep_monthly: u32,
    /// Keep the newest backup of each of the last N years.
    #[arg(long, default_value_t = 0)]
    keep_yearly: u32,
}

impl KeepArgs {
    fn retention(&self) -> Retention {
        Retention {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
        }
    }
}

/// Parses an interval such as `90s`, `30m`, `6h`, `1d`.
pub fn parse_every(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("interval {s:?}: expected a number and a unit, e.g. 6h"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("interval {s:?}: the unit must be s, m, h or d (e.g. 6h)"),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .with_context(|| format!("interval {s:?} is out of range"))
}

fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    abs.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not valid UTF-8", abs.display()))
}

fn repo_rows(repos: &[BackupRepo]) -> Vec<Vec<String>> {
    repos
        .iter()
        .map(|r| {
            let (kind, at) = match &r.location {
                RepoLocation::Dir { path } => ("dir", path.clone()),
                RepoLocation::S3 { url } => ("s3", url.clone()),
            };
            vec![
                r.name.clone(),
                kind.into(),
                at,
                if r.key_file.is_some() { "yes" } else { "no" }.into(),
            ]
        })
        .collect()
}

fn when(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => crate::output::ago(ms / 1000),
        None => "-".into(),
    }
}

fn backup_rows(b: &[Backup]) -> Vec<Vec<String>> {
    b.iter()
        .map(|b| {
            vec![
                b.id.clone(),
                b.vm.clone().unwrap_or_else(|| "?".into()),
                b.repo.clone(),
                when(b.created_unix_ms),
                b.size_bytes.map(format_size).unwrap_or_else(|| "-".into()),
                b.error.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

pub async fn run(cmd: BackupCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    match cmd {
        BackupCommand::Repo(RepoCommand::Add {
            name,
            path,
            s3,
            encrypt,
            key_file,
        }) => {
            if path.is_none() && s3.is_none() {
                bail!("say where the repository lives: --path DIR or --s3 URL");
            }
            if key_file.is_some() && !encrypt {
                bail!("--key-file goes with --encrypt");
            }
            let req = BackupRepoAddRequest {
                name,
                path: path.as_deref().map(absolute).transpose()?,
                s3,
                encrypt,
                key_file: key_file.as_deref().map(absolute).transpose()?,
            };
            let r = c.backup_repo_add(&req).await?;
            output::print(out, &r, &["NAME", "TYPE", "LOCATION", "ENCRYPTED"], || {
                repo_rows(std::slice::from_ref(&r))
            })
        }
        BackupCommand::Repo(RepoCommand::List) => {
            let repos = c.backup_repo_list().await?;
            output::print(
                out,
                &repos,
                &["NAME", "TYPE", "LOCATION", "ENCRYPTED"],
                || repo_rows(&repos),
            )
        }
        BackupCommand::Repo(RepoCommand::Sync {
            name,
            path,
            s3,
            as_name,
            prune_target,
        }) => {
            if path.is_none() && s3.is_none() {
                bail!("say where the copy goes: --path DIR or --s3 URL");
            }
            let req = novacron_api_types::backup::RepoSyncRequest {
                path: path.as_deref().map(absolute).transpose()?,
                s3,
                r#as: as_name,
                prune_target,
            };
            let r = c.backup_sync(&name, &req).await?;
            output::print_details(out, &r, || {
                [
                    ("chunks copied", "chunks_copied"),
                    ("chunks already there", "chunks_already_there"),
                    ("indexes copied", "indexes_copied"),
                    ("bytes copied", "bytes_copied"),
                    ("indexes removed", "indexes_removed"),
                ]
                .into_iter()
                .map(|(label, k)| (label, r[k].to_string()))
                .collect()
            })
        }
        BackupCommand::Create { vm, repo, no_wait } => {
            let op = c
                .backup_create(&vm, &BackupCreateRequest { repo })
                .await?
                .operation;
            let op = if no_wait {
                op
            } else {
                wait_op(&c, op, Duration::from_secs(24 * 3600)).await?
            };
            output::print_details(out, &op, || {
                vec![
                    ("operation", op.id.clone()),
                    ("state", format!("{:?}", op.state).to_lowercase()),
                    ("result", op.message.clone()),
                ]
            })
        }
        BackupCommand::List { vm, repo } => {
            let list = c.backup_list(vm.as_deref(), repo.as_deref()).await?;
            output::print(
                out,
                &list,
                &["ID", "VM", "REPO", "CREATED", "SIZE", "ERROR"],
                || backup_rows(&list),
            )
        }
        BackupCommand::Show { id } => {
            let v = c.backup_show(&id).await?;
            output::print_details(out, &v, || {
                let mut pairs = vec![
                    ("id", v["id"].as_str().unwrap_or("").to_string()),
                    ("vm", v["vm"].as_str().unwrap_or("").to_string()),
                    ("repo", v["repo"].as_str().unwrap_or("").to_string()),
                    ("created", when(v["created_unix_ms"].as_u64())),
                ];
                if let Some(disks) = v["disks"].as_array() {
                    for d in disks {
                        let mode = &d["read_mode"];
                        let how = if let Some(p) = mode["parent"].as_str() {
                            format!("incremental after {p}")
                        } else if let Some(r) = mode["reason"].as_str() {
                            format!("full read ({r})")
                        } else {
                            mode.to_string()
                        };
                        pairs.push((
                            "disk",
                            format!(
                                "{} {} {}",
                                d["name"].as_str().unwrap_or(""),
                                format_size(d["size_bytes"].as_u64().unwrap_or(0)),
                                how
                            ),
                        ));
                    }
                }
                let s = &v["stats"];
                pairs.push(("read", format_size(s["bytes_read"].as_u64().unwrap_or(0))));
                pairs.push((
                    "stored",
                    format_size(s["bytes_stored"].as_u64().unwrap_or(0)),
                ));
                pairs
            })
        }
        BackupCommand::Delete { id, repo } => {
            let v = c.backup_delete(&id, repo.as_deref()).await?;
            output::print_details(out, &v, || {
                vec![
                    ("deleted", id.clone()),
                    ("repo", v["repo"].as_str().unwrap_or("").to_string()),
                    ("vm", v["vm"].as_str().unwrap_or("").to_string()),
                ]
            })
        }
        BackupCommand::Restore {
            id,
            as_name,
            node,
            over,
            repo,
        } => {
            if over == as_name.is_some() {
                bail!(
                    "say where to restore: --as NEW-NAME, or --over to replace the original (stopped) VM"
                );
            }
            let req = BackupRestoreRequest {
                r#as: as_name,
                node,
                over_original: over,
                repo,
            };
            let op = c.backup_restore(&id, &req).await?.operation;
            let op = wait_op(&c, op, Duration::from_secs(24 * 3600)).await?;
            output::print_details(out, &op, || {
                vec![
                    ("operation", op.id.clone()),
                    ("target", op.target.clone()),
                    ("result", op.message.clone()),
                ]
            })
        }
        BackupCommand::Verify { repo, all } => {
            let report = c.backup_verify(&repo, all).await?;
            let count = |k: &str| report[k].as_array().map(|a| a.len()).unwrap_or(0);
            let damaged = count("affected_backups");
            let problems = count("bad_chunks") + count("bad_unreferenced_chunks");
            output::print_details(out, &report, || {
                let mut pairs = vec![
                    ("repository", repo.clone()),
                    ("backups", report["backups_checked"].to_string()),
                    ("chunks", report["chunks_checked"].to_string()),
                    (
                        "result",
                        if damaged == 0 && problems == 0 {
                            "ok".into()
                        } else {
                            "DAMAGED".into()
                        },
                    ),
                ];
                for b in report["affected_backups"].as_array().into_iter().flatten() {
                    let reasons: Vec<&str> = b["reasons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str())
                        .collect();
                    pairs.push((
                        "damaged backup",
                        format!(
                            "{} ({})",
                            b["id"].as_str().unwrap_or("?"),
                            reasons.join("; ")
                        ),
                    ));
                }
                for c in report["bad_chunks"].as_array().into_iter().flatten() {
                    pairs.push((
                        "bad chunk",
                        format!(
                            "{}: {}",
                            c["id"].as_str().unwrap_or("?"),
                            c["reason"].as_str().unwrap_or("")
                        ),
                    ));
                }
                pairs
            })?;
            if damaged > 0 || problems > 0 {
                bail!(
                    "repository {repo} is damaged: {damaged} backup(s) affected, {problems} problem(s)"
                );
            }
            Ok(())
        }
        BackupCommand::Prune {
            repo,
            keep,
            vm,
            dry_run,
        } => {
            let retention = keep.retention();
            if retention.is_empty() {
                bail!("give at least one --keep-* rule, e.g. --keep-daily 7");
            }
            let req = PruneRequest {
                retention,
                dry_run,
                vm,
            };
            let report = c.backup_prune(&repo, &req).await?;
            output::print_details(out, &report, || {
                let ids = |k: &str| -> Vec<String> {
                    report[k]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|i| {
                                    i["id"]
                                        .as_str()
                                        .or_else(|| i.as_str())
                                        .unwrap_or("")
                                        .to_string()
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let mut pairs = vec![];
                let verb = if dry_run { "would remove" } else { "removed" };
                for id in ids("removed") {
                    pairs.push((verb, id));
                }
                for id in ids("kept") {
                    pairs.push(("kept", id));
                }
                pairs
            })
        }
        BackupCommand::Gc { repo } => {
            let report = c.backup_gc(&repo).await?;
            output::print_details(out, &report, || {
                [
                    ("chunks", "chunks_total"),
                    ("referenced", "chunks_referenced"),
                    ("deleted", "chunks_deleted"),
                    ("bytes deleted", "bytes_deleted"),
                    ("kept (grace period)", "chunks_in_grace"),
                ]
                .into_iter()
                .map(|(label, k)| (label, report[k].to_string()))
                .collect()
            })
        }
        BackupCommand::Schedule {
            vm,
            repo,
            every,
            keep,
            remove,
        } => {
            if remove {
                let v = c.backup_schedule_delete(&vm).await?;
                return output::print_details(out, &v, || vec![("removed schedule of", vm)]);
            }
            let (Some(repo), Some(every)) = (repo, every) else {
                bail!("give --repo and --every (or --remove)");
            };
            let s = BackupSchedule {
                vm,
                repo,
                every_seconds: parse_every(&every)?,
                retention: keep.retention(),
                last_run: 0,
                last_operation: None,
            };
            let s = c.backup_schedule_set(&s).await?;
            output::print(out, &s, &["VM", "REPO", "EVERY"], || {
                vec![vec![
                    s.vm.clone(),
                    s.repo.clone(),
                    format!("{}s", s.every_seconds),
                ]]
            })
        }
        BackupCommand::Schedules => {
            let list = c.backup_schedule_list().await?;
            output::print(out, &list, &["VM", "REPO", "EVERY", "LAST RUN"], || {
                list.iter()
                    .map(|s| {
                        vec![
                            s.vm.clone(),
                            s.repo.clone(),
                            format!("{}s", s.every_seconds),
                            if s.last_run == 0 {
                                "never".into()
                            } else {
                                crate::output::ago(s.last_run)
                            },
                        ]
                    })
                    .collect()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_every;

    #[test]
    fn intervals() {
        assert_eq!(parse_every("6h").ok(), Some(6 * 3600));
        assert_eq!(parse_every("90s").ok(), Some(90));
        assert_eq!(parse_every("1d").ok(), Some(86400));
        assert!(parse_every("6").is_err());
        assert!(parse_every("h").is_err());
        assert!(parse_every("0m").is_err());
        assert!(parse_every("6w").is_err());
    }
}
