//! `novacron`: one binary for every role. `up` runs a whole single-machine cluster, `server`
//! the control plane, `agent` a node agent; every other command is the CLI.

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod audit;
mod backups;
mod bench;
mod cli;
mod config_file;
mod disks;
mod docs;
mod events;
mod exec;
mod join_tokens;
mod migrations;
mod networks;
mod nics;
mod output;
mod perms;
mod roles;
mod security_groups;
mod snapshots;
mod systemd;
mod tenancy;
mod terminal_safe;
mod vm_stats;
mod vnc;

use clap::{CommandFactory, Parser};

/// clap's usage error as one line: its first line, with the indented items clap lists under
/// a line ending in `:` (the missing arguments) joined onto it.
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("error: invalid arguments");
    let mut message = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if message.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with(' '))
            .map(str::trim)
            .collect();
        if !items.is_empty() {
            message.push(' ');
            message.push_str(&items.join(", "));
        }
    }
    message
}

fn main() -> std::process::ExitCode {
    // Before anything is created or any thread starts: every role and the CLI write owner-only.
    perms::restrict_umask();
    let raw_args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `up`, `server` and `agent` may take settings from a TOML file (`--config`).
    let argv = match config_file::fold_into_args(cli::Cli::command(), raw_args) {
        Ok(argv) => argv,
        Err(message) => return usage_error(&message),
    };
    let args = match cli::Cli::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            // Usage errors are one line too, like every other error.
            return usage_error(&format!("{} (see --help)", one_line(&e.to_string())));
        }
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::SUCCESS;
        }
    };
    if !args.is_daemon() {
        quiet_when_stdout_closes();
    }
    let default_level = if args.is_daemon() { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NOVACRON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    novacron_agent::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json_errors = args.output == output::Format::Json;
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line: the error and its causes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            if stdout_reader_gone() {
                die_of_sigpipe();
            }
            if json_errors {
                eprintln!("{}", output::error_json(output::error_code(&e), &msg));
            } else {
                eprintln!("error: {msg}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints a usage error as one line (JSON with `-o json`) and exits 2.
fn usage_error(message: &str) -> std::process::ExitCode {
    let raw: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if output::json_requested(&raw) {
        eprintln!("{}", output::error_json("invalid_argument", message));
    } else {
        eprintln!("error: {message}");
    }
    std::process::ExitCode::from(2)
}

/// A CLI whose output is piped into `head` ends quietly, like other tools, when the reader
/// goes away. SIGPIPE itself stays ignored (Rust's default): a write to a socket the server
/// closed (an upload it refused early) must fail with EPIPE so the server's answer is printed,
/// not kill the process without a word. Only a closed stdout ends the CLI as SIGPIPE would.
fn quiet_when_stdout_closes() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout") && stdout_reader_gone() {
            die_of_sigpipe();
        }
        default_hook(info);
    }));
}

/// Whether stdout is a pipe or socket whose reader has gone (a write would fail with EPIPE).
fn stdout_reader_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLERR != 0
}

/// Ends the process as a default SIGPIPE would (the shell sees 128+13), like `cat | head`.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default disposition and raising the signal at ourselves.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_keep_what_clap_lists_under_them() {
        let e = cli::Cli::try_parse_from([
            "novacron",
            "vm",
            "console",
            "web1",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap_err();
        assert_eq!(
            one_line(&e.to_string()),
            "the following required arguments were not provided: --vnc"
        );
        let e = cli::Cli::try_parse_from(["novacron", "vm", "nosuch"]).unwrap_err();
        let line = one_line(&e.to_string());
        assert!(
            line.starts_with("unrecognized subcommand 'nosuch'"),
            "{line}"
        );
    }
}
