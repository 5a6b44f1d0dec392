//! The one error type of the QEMU driver; every message says what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while driving QEMU, qemu-img or building guest artefacts.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The QEMU system emulator binary could not be found or executed.
    #[error(
        "{binary} not found: install the Debian package qemu-system-x86 (or point NOVACRON_QEMU_BINARY at the binary)"
    )]
    QemuNotFound { binary: String },

    /// qemu-img could not be found or executed.
    #[error(
        "{binary} not found: install the Debian package qemu-utils (or point NOVACRON_QEMU_IMG at the binary)"
    )]
    QemuImgNotFound { binary: String },

    /// An I/O operation failed; `context` says which one and on what.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// An accelerator name that is not one of auto, kvm, tcg.
    #[error("unknown accelerator '{0}': use auto, kvm or tcg")]
    InvalidAccelChoice(String),

    /// KVM was asked for explicitly but cannot be used on this host.
    #[error("KVM requested but unusable: {reason}; use accel auto or tcg on this host")]
    KvmUnavailable { reason: String },

    /// The VM spec cannot be turned into a working QEMU command line.
    #[error("invalid VM spec: {0}")]
    InvalidSpec(String),

    /// Could not reach QEMU's QMP socket.
    #[error("cannot connect to QMP socket {socket}: {reason}")]
    QmpConnect { socket: PathBuf, reason: String },

    /// QEMU sent something that is not valid QMP, or the handshake failed.
    #[error("QMP protocol error: {0}")]
    QmpProtocol(String),

    /// A disk could not be plugged into or unplugged from a running VM.
    #[error("{0}")]
    Hotplug(String),

    /// QEMU answered a command with an error.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Qmp {
        command: String,
        class: String,
        desc: String,
    },

    /// QEMU did not answer a command in time.
    #[error(
        "QMP command {command} got no answer within {timeout_ms} ms: QEMU is hung or overloaded"
    )]
    QmpTimeout { command: String, timeout_ms: u64 },

    /// The QMP connection is gone (QEMU exited or closed the monitor).
    #[error("QMP connection closed: QEMU exited or dropped the monitor")]
    QmpClosed,

    /// A QEMU process already runs for this run directory.
    #[error("QEMU (pid {pid}) already runs for {run_dir}: adopt it or shut it down first")]
    AlreadyRunning { pid: u32, run_dir: PathBuf },

    /// QEMU did not come up; `log_tail` holds the last lines it wrote.
    #[error("QEMU failed to start: {reason}\n--- last lines of the QEMU log ---\n{log_tail}")]
    LaunchFailed { reason: String, log_tail: String },

    /// Sending a signal to QEMU failed.
    #[error("cannot signal QEMU pid {pid}: {source}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },

    /// qemu-img ran but failed.
    #[error("qemu-img {operation} failed: {stderr}")]
    QemuImg { operation: String, stderr: String },

    /// A file offered as a disk image is not one we accept.
    #[error("{path} is not an importable disk image: {reason}")]
    InvalidImage { path: PathBuf, reason: String },

    /// No kernel to boot the tiny image with.
    #[error(
        "no kernel found in {dir}: install the Debian package linux-image-cloud-amd64 (or set TinyOptions::kernel)"
    )]
    KernelNotFound { dir: PathBuf },

    /// busybox missing or not statically linked.
    #[error("{path}: {reason}; install the Debian package busybox-static")]
    BusyboxUnusable { path: PathBuf, reason: String },

    /// Any other problem while building the tiny guest image.
    #[error("cannot build the tiny guest image: {0}")]
    TinyImage(String),

    /// Expected text did not appear on the serial console in time.
    #[error(
        "{needle:?} did not appear in {log} within {timeout_ms} ms; last console lines: {tail}"
    )]
    ConsoleTimeout {
        needle: String,
        log: PathBuf,
        timeout_ms: u64,
        tail: String,
    },

    /// A cloud-init seed could not be made from the given inputs.
    #[error("cannot write the cloud-init seed: {0}")]
    Seed(String),

    /// The guest's qemu-guest-agent channel failed, or the agent answered nonsense.
    #[error("{0}")]
    GuestAgent(String),

    /// The guest did not answer on its guest agent channel.
    #[error(
        "the guest did not answer on its guest agent channel within {waited_s} s: it runs no qemu-guest-agent \
         (install it in the guest, e.g. `apt install qemu-guest-agent`), or the agent has not started yet"
    )]
    GuestAgentSilent { waited_s: u64 },

    /// The guest agent refused a command (e.g. the program does not exist in the guest).
    #[error("the guest agent refused: {class}: {desc}")]
    GuestAgentRefused { class: String, desc: String },

    /// A command run through the guest agent had not ended by its deadline.
    #[error(
        "{program} did not end within {waited_s} s; it keeps running in the guest as pid {pid}"
    )]
    GuestAgentStillRunning {
        program: String,
        pid: i64,
        waited_s: u64,
    },
}

impl QemuError {
    /// Wraps an I/O error with a sentence saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> QemuError {
        QemuError::Io {
            context: context.into(),
            source,
        }
    }
}
