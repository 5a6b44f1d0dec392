//! `vm exec` on this node: a command run in a running guest through its qemu-guest-agent
//! ([`novacron_qemu::qga`]), answered with its exit status and output. Nothing is recorded:
//! the control plane audits the request.

use novacron_api_types::ApiError;
use novacron_api_types::exec::{ExecRequest, ExecResult};
use novacron_qemu::QemuError;

use crate::backup::VmAccess;

/// How a guest agent failure reads to the caller: a guest without an agent, or a command
/// still running at its deadline, is the VM's state (409); a refused command is the
/// request's fault (400); a broken channel is ours (500).
fn failure(vm: &str, e: QemuError) -> ApiError {
    match e {
        QemuError::GuestAgentSilent { .. } | QemuError::GuestAgentStillRunning { .. } => {
            ApiError::conflict(format!("VM {vm}: {e}"))
        }
        QemuError::GuestAgentRefused { .. } => ApiError::invalid(format!("VM {vm}: {e}")),
        e => ApiError::internal(format!("VM {vm}: {e}")),
    }
}

/// Runs the request's command in the VM's guest and waits for it, at most its timeout.
pub async fn run(vm: VmAccess, req: ExecRequest) -> Result<ExecResult, ApiError> {
    let name = &vm.desired.name;
    let input = req.validate()?;
    let Some(qemu) = &vm.running else {
        return Err(ApiError::conflict(format!(
            "VM {name} is not running: start it first (`novacron vm start {name}`)"
        )));
    };
    let status = qemu
        .qmp()
        .query_status()
        .await
        .map_err(|e| ApiError::internal(format!("VM {name}: asking QEMU its state: {e}")))?;
    if !status.running {
        return Err(ApiError::conflict(format!(
            "VM {name} is {}: a paused guest cannot run commands (`novacron vm resume {name}`)",
            status.status
        )));
    }
    let asked = tokio::time::Instant::now();
    let deadline = asked + req.timeout();
    // The deadline also bounds the wait for another session's turn on the channel.
    let mut session = match tokio::time::timeout_at(deadline, qemu.guest_agent()).await {
        Ok(session) => session.map_err(|e| failure(name, e))?,
        Err(_) => {
            return Err(ApiError::conflict(format!(
                "VM {name}: another `vm exec` held the guest agent for the whole {} s; try again",
                req.timeout().as_secs()
            )));
        }
    };
    // The command's own deadline ends the polling; this one catches an agent gone quiet.
    let out = tokio::time::timeout_at(
        deadline + std::time::Duration::from_secs(10),
        session.exec(&req.command, input.as_deref(), deadline),
    )
    .await
    .map_err(|_| {
        ApiError::internal(format!(
            "VM {name}: the guest agent stopped answering while {} ran",
            req.command[0]
        ))
    })?
    .map_err(|e| failure(name, e))?;
    let elapsed_ms = asked.elapsed().as_millis() as u64;
    tracing::info!(vm = %name, program = %req.command[0], exit_code = ?out.exit_code, elapsed_ms, "command ran in the guest");
    let (stdout, stderr, encoding) = ExecResult::from_streams(out.stdout, out.stderr);
    Ok(ExecResult {
        exit_code: out.exit_code,
        signal: out.signal,
        stdout,
        stderr,
        encoding,
        stdout_truncated: out.stdout_truncated,
        stderr_truncated: out.stderr_truncated,
        elapsed_ms,
    })
}
