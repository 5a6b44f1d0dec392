//! `novacron vm exec NAME -- COMMAND...`: runs a command in the guest through its
//! qemu-guest-agent, prints what it wrote (stdout to stdout, stderr to stderr) once it ended,
//! and exits with its status (128 + the signal when a signal ended it), like `ssh host cmd`.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use novacron_api_types::exec::{ExecRequest, MAX_STDIN_BYTES};
use novacron_client::Client;

use crate::output::Format;

pub async fn run(
    c: &Client,
    out: Format,
    name: &str,
    stdin: bool,
    timeout: &str,
    command: Vec<String>,
) -> anyhow::Result<()> {
    let timeout_s = novacron_api_types::tenancy::parse_duration_secs(timeout)
        .map_err(anyhow::Error::msg)
        .context("--timeout")?;
    let input = if stdin {
        let mut input = Vec::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES as u64 + 1)
            .read_to_end(&mut input)
            .context("reading standard input")?;
        if input.len() > MAX_STDIN_BYTES {
            bail!("--stdin takes at most 1 MiB of input");
        }
        Some(input)
    } else {
        None
    };
    let req = ExecRequest::new(command, input.as_deref(), Some(timeout_s));
    let result = c.vm_exec(name, &req).await?;
    if out == Format::Json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let (stdout, stderr) = result
        .streams()
        .map_err(anyhow::Error::msg)
        .context("the answer's output")?;
    std::io::stdout().write_all(&stdout)?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(&stderr)?;
    for (truncated, which) in [
        (result.stdout_truncated, "stdout"),
        (result.stderr_truncated, "stderr"),
    ] {
        if truncated {
            eprintln!("novacron: the guest agent kept only the first 16 MiB of {which}");
        }
    }
    let code = match (result.exit_code, result.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 0,
    };
    if code != 0 {
        std::process::exit(code & 0xFF);
    }
    Ok(())
}
