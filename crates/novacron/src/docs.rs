//! Documentation generated from the command tree itself, so it cannot drift from the CLI:
//! shell completions (`novacron completion bash|zsh|fish`) and man pages (`novacron man`);
//! also the HTTP API's OpenAPI document (`novacron openapi`), built from the server's
//! routes, which `sdk/python/generate.sh` turns into the Python SDK, and the node agent
//! API's (`novacron openapi --agent`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    novacron completion bash > /etc/bash_completion.d/novacron\n  \
    novacron completion zsh > \"${fpath[1]}/_novacron\"\n  \
    novacron completion fish > ~/.config/fish/completions/novacron.fish")]
pub struct CompletionArgs {
    /// The shell to complete for: bash, zsh, fish (also elvish, powershell).
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    novacron man | man -l -                 # read the main page\n  \
    novacron man --dir /usr/local/share/man/man1 && mandb")]
pub struct ManArgs {
    /// Write one page per command (novacron.1, novacron-vm.1, novacron-vm-create.1, ...)
    /// into this directory instead of the main page to stdout.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    novacron openapi > openapi.json\n  \
    sdk/python/generate.sh                  # regenerates the Python SDK from it\n  \
    novacron openapi --agent > agent-openapi.json")]
pub struct OpenapiArgs {
    /// Print the node agent's API document (what the control plane calls on each node)
    /// instead of the control plane's.
    #[arg(long)]
    pub agent: bool,
}

/// Prints the server's OpenAPI document (the one `GET /api/v1/openapi.json` serves), or
/// with `--agent` the node agent's.
pub fn openapi(args: OpenapiArgs) -> anyhow::Result<()> {
    let document = if args.agent {
        novacron_agent::openapi::document_json()?
    } else {
        novacron_server::api::openapi::document_json()?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{document}")?;
    out.flush()?;
    Ok(())
}

pub fn completion(args: CompletionArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "novacron", &mut out);
    out.flush()?;
    Ok(())
}

pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let n = write_pages(&cmd, "novacron", &dir)?;
            eprintln!("wrote {n} man pages to {}", dir.display());
        }
    }
    Ok(())
}

/// Writes the page of `cmd` (named `name`) and of every visible subcommand; returns how many.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let path = dir.join(format!("{name}.1"));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut bytes)?;
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        n += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and argument a user can see says what it is for, outside the benchmarks
    /// (whose options are documented in docs/benchmarks.md).
    #[test]
    fn every_option_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.is_hide_set() || sub.get_name() == "help" || sub.get_name() == "bench" {
                    continue;
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = vec![];
        walk(&cmd, "novacron", &mut missing);
        assert!(
            missing.is_empty(),
            "{} options without help text:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }

    /// The top-level help and every VM command's help show an example.
    #[test]
    fn top_level_and_vm_commands_show_examples() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = vec![];
        let has_example = |c: &clap::Command| {
            c.get_after_help()
                .or(c.get_after_long_help())
                .is_some_and(|h| h.to_string().contains("Example"))
        };
        if !has_example(&cmd) {
            missing.push("novacron".to_string());
        }
        let checked = ["vm", "events", "completion", "man", "openapi"];
        for sub in cmd.get_subcommands() {
            if !checked.contains(&sub.get_name()) {
                continue;
            }
            if sub.get_subcommands().next().is_none() && !has_example(sub) {
                missing.push(sub.get_name().to_string());
            }
            for leaf in sub.get_subcommands().filter(|s| s.get_name() != "help") {
                if !has_example(leaf) {
                    missing.push(format!("{} {}", sub.get_name(), leaf.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "no example in: {missing:?}");
    }

    #[test]
    fn completions_and_man_pages_are_generated() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "novacron", &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("migration"), "{shell}: no subcommands");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Cli::command();
        cmd.build();
        let n = write_pages(&cmd, "novacron", dir.path()).unwrap();
        assert!(n > 20, "{n} pages");
        let vm_create = std::fs::read_to_string(dir.path().join("novacron-vm-create.1")).unwrap();
        assert!(vm_create.contains(".TH"), "{vm_create}");
    }
}
