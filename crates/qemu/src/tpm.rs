//! TPM 2.0: a swtpm process of the VM's own, which QEMU's `tpm-crb` device talks to.
//!
//! The TPM's state (its seeds, NV indices, whatever the guest sealed) is one file,
//! [`STATE_FILE`], in a directory beside the VM's disks: `tpm/<node>/`. Each node has its own
//! directory because swtpm locks the one it uses, and during a live migration both nodes' swtpm
//! run at once: with the disks in a shared pool the destination would otherwise find the
//! source's lock. A migration's destination starts from an empty directory and QEMU fills it
//! with the migrated state; any later start takes the newest state file there is, copying it
//! into its own node's directory when another node wrote it last (an HA restart).
//!
//! swtpm starts just before QEMU, as the VM's user, in a session of its own, with its output
//! in the run directory's `swtpm.log`. It ends by itself when QEMU closes its connection
//! (`--terminate`), so the VM's stop, crash or migration ends it too; if QEMU never starts,
//! [`Swtpm`]'s drop ends it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::user::RunAs;
use crate::{QemuError, RunDir};

/// The directory beside the disks that holds each node's state directory.
pub const STATE_ROOT: &str = "tpm";
/// swtpm's file for a TPM 2.0's permanent state.
pub const STATE_FILE: &str = "tpm2-00.permall";
/// The swtpm program (Debian's package `swtpm`).
pub const SWTPM: &str = "swtpm";
/// How long swtpm may take to open its socket and write its pid file.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A TPM 2.0 through swtpm, with its state in `state_dir`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tpm {
    /// This node's state directory (`<disks>/tpm/<node>`), the VM user's.
    pub state_dir: PathBuf,
}

/// The newest state file under `root` (`<disks>/tpm`): the TPM's current state, whichever
/// node wrote it last. On equal times, the one in `prefer`.
pub fn newest_state(root: &Path, prefer: Option<&Path>) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.path().join(STATE_FILE);
            let modified = std::fs::metadata(&file).ok()?.modified().ok()?;
            let preferred = prefer.is_some_and(|p| e.path() == p);
            Some(((modified, preferred), file))
        })
        .max_by_key(|(key, _)| *key)
        .map(|(_, file)| file)
}

/// This node's state directory under `root`, ready for swtpm. For a migration's destination
/// (`incoming`) it starts empty: QEMU writes the source's state into it. Otherwise it holds the
/// newest state under `root` (copied in when another node wrote it), or none for a new TPM.
pub fn prepare_state(root: &Path, node: &str, incoming: bool) -> Result<Tpm, QemuError> {
    if node.is_empty() || node.contains(['/', ',']) || node.starts_with('.') {
        return Err(QemuError::InvalidSpec(format!(
            "TPM state directory for node {node:?}: not a plain name"
        )));
    }
    let dir = root.join(node);
    let io = |what: &str, e| QemuError::io(format!("{what} {}", dir.display()), e);
    if incoming {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("emptying the TPM state directory", e)),
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| io("making the TPM state directory", e))?;
    // The VM's user (its swtpm) passes through to its own directory; the process umask
    // would close the root to it.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| io("letting the VM user reach", e))?;
    if !incoming
        && let Some(newest) = newest_state(root, Some(&dir))
        && newest.parent() != Some(dir.as_path())
    {
        let own = dir.join(STATE_FILE);
        tracing::info!(from = %newest.display(), to = %own.display(), "taking the TPM state another node wrote last");
        crate::firmware::copy_whole(&newest, &own)?;
    }
    Ok(Tpm { state_dir: dir })
}

/// QEMU's side: the socket swtpm listens on and a CRB interface (what Windows 11 and Linux
/// expect of a TPM 2.0; no ISA bus needed, so q35 and pc alike).
pub(crate) fn args(run_dir: &RunDir) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!(
            "socket,id=chrtpm,path={}",
            crate::cmdline::escape_opt(&run_dir.tpm_socket().to_string_lossy())
        ),
        "-tpmdev".into(),
        "emulator,id=tpm0,chardev=chrtpm".into(),
        "-device".into(),
        "tpm-crb,tpmdev=tpm0".into(),
    ]
}

/// swtpm's command line. Its option parser splits on commas, which no path may hold.
fn swtpm_args(tpm: &Tpm, run_dir: &RunDir) -> Result<Vec<String>, QemuError> {
    let state = tpm.state_dir.to_string_lossy();
    let (socket, pidfile) = (run_dir.tpm_socket(), run_dir.tpm_pidfile());
    let (socket, pidfile) = (socket.to_string_lossy(), pidfile.to_string_lossy());
    for path in [&state, &socket, &pidfile] {
        if path.contains(',') {
            return Err(QemuError::InvalidSpec(format!(
                "swtpm cannot use a path with a comma: {path}"
            )));
        }
    }
    Ok(vec![
        "socket".into(),
        "--tpm2".into(),
        "--tpmstate".into(),
        format!("dir={state},mode=0600"),
        "--ctrl".into(),
        format!("type=unixio,path={socket},mode=0600"),
        "--pid".into(),
        format!("file={pidfile}"),
        "--terminate".into(),
    ])
}

/// A started swtpm. Dropping it ends the process unless [`Swtpm::detach`] said QEMU has it.
pub(crate) struct Swtpm {
    kill: Option<oneshot::Sender<()>>,
}

impl Swtpm {
    /// QEMU is connected: swtpm now ends when QEMU does.
    pub(crate) fn detach(mut self) {
        self.kill.take();
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// Starts swtpm for `tpm` (as `run_as` when given) and waits until its socket and pid file
/// are there.
pub(crate) async fn start(
    tpm: &Tpm,
    run_dir: &RunDir,
    run_as: Option<&RunAs>,
) -> Result<Swtpm, QemuError> {
    let args = swtpm_args(tpm, run_dir)?;
    end_stale(run_dir);
    let socket = run_dir.tpm_socket();
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(QemuError::io(format!("removing {}", socket.display()), e)),
    }
    let log_path = run_dir.tpm_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| QemuError::io(format!("opening {}", log_path.display()), e))?;
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log
        .try_clone()
        .map_err(|e| QemuError::io(format!("duplicating {}", log_path.display()), e))?;
    let mut command = tokio::process::Command::new(SWTPM);
    command
        .args(&args)
        .current_dir(run_dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .kill_on_drop(false);
    let run_as = run_as.cloned();
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2) and
    // the credential calls of `become_in_child`, which are async-signal-safe; `run_as` was
    // allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(who) = &run_as {
                crate::user::become_in_child(who)?;
            }
            Ok(())
        });
    }
    crate::process::inherit_only_stdio(command.as_std_mut(), &[]);
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            QemuError::InvalidSpec(
                "a TPM needs swtpm, which this node lacks (Debian's package `swtpm`: apt-get install swtpm)"
                    .into(),
            )
        } else {
            QemuError::io(format!("starting {SWTPM}"), e)
        }
    })?;
    let started = std::time::Instant::now();
    let ready = loop {
        if socket.exists() && run_dir.tpm_pidfile().exists() {
            break Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("swtpm exited during start-up ({status})"));
        }
        if started.elapsed() > START_TIMEOUT {
            break Err(format!(
                "swtpm did not open {} within {} s",
                socket.display(),
                START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if let Err(reason) = ready {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(QemuError::LaunchFailed {
            reason,
            log_tail: crate::spec::tail_lines(&log_path, log_offset, 20),
        });
    }
    let (kill, mut kill_rx) = oneshot::channel();
    let pid = child.id();
    tokio::spawn(async move {
        // The reaper: swtpm never lingers as a zombie of the agent.
        let killed = tokio::select! {
            _ = child.wait() => false,
            order = &mut kill_rx => order.is_ok(),
        };
        if killed {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    });
    tracing::info!(pid, state = %tpm.state_dir.display(), "swtpm is up");
    Ok(Swtpm { kill: Some(kill) })
}

/// Ends a swtpm of `run_dir` that no QEMU ever connected to: one an agent started just before
/// it died (it would wait for a connection for ever). Only a process whose command line names
/// this run directory's socket is touched.
fn end_stale(run_dir: &RunDir) {
    let pidfile = run_dir.tpm_pidfile();
    let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    let socket = format!("path={}", run_dir.tpm_socket().to_string_lossy());
    let ours = crate::process::proc_cmdline(pid).is_some_and(|args| {
        args.first()
            .is_some_and(|a| Path::new(a).file_name() == Some(std::ffi::OsStr::new(SWTPM)))
            && args.iter().any(|a| a.contains(&socket))
    });
    if ours {
        tracing::warn!(pid, run_dir = %run_dir.path().display(), "ending a swtpm no QEMU connected to");
        crate::process::kill_and_reap(&[pid], Duration::from_secs(5));
    }
    let _ = std::fs::remove_file(&pidfile);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_state(dir: &Path, bytes: &[u8], age: Duration) {
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join(STATE_FILE);
        std::fs::write(&file, bytes).unwrap();
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_new_tpm_starts_empty_in_its_nodes_directory() {
        let root = tempfile::tempdir().unwrap();
        let tpm = prepare_state(root.path(), "node-a", false).unwrap();
        assert_eq!(tpm.state_dir, root.path().join("node-a"));
        assert!(tpm.state_dir.is_dir());
        assert!(!tpm.state_dir.join(STATE_FILE).exists());
    }

    #[test]
    fn a_start_takes_the_newest_state_of_any_node() {
        let root = tempfile::tempdir().unwrap();
        write_state(&root.path().join("node-a"), b"old", Duration::from_secs(60));
        write_state(&root.path().join("node-b"), b"new", Duration::from_secs(1));
        // An HA restart on a third node: node-b's state, copied into its own directory.
        let tpm = prepare_state(root.path(), "node-c", false).unwrap();
        assert_eq!(
            std::fs::read(tpm.state_dir.join(STATE_FILE)).unwrap(),
            b"new"
        );
        // node-a's own state is older than node-c's copy now: node-a takes that.
        let tpm = prepare_state(root.path(), "node-a", false).unwrap();
        assert_eq!(
            std::fs::read(tpm.state_dir.join(STATE_FILE)).unwrap(),
            b"new"
        );
        // Its own newest state stays as it is.
        write_state(&root.path().join("node-a"), b"newest", Duration::ZERO);
        let tpm = prepare_state(root.path(), "node-a", false).unwrap();
        assert_eq!(
            std::fs::read(tpm.state_dir.join(STATE_FILE)).unwrap(),
            b"newest"
        );
    }

    #[test]
    fn a_migrations_destination_starts_empty() {
        let root = tempfile::tempdir().unwrap();
        write_state(&root.path().join("node-a"), b"source", Duration::ZERO);
        write_state(
            &root.path().join("node-b"),
            b"stale",
            Duration::from_secs(3600),
        );
        let tpm = prepare_state(root.path(), "node-b", true).unwrap();
        assert!(!tpm.state_dir.join(STATE_FILE).exists());
        assert_eq!(
            std::fs::read(root.path().join("node-a").join(STATE_FILE)).unwrap(),
            b"source"
        );
    }

    #[test]
    fn odd_node_names_and_paths_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for node in ["", "a/b", "..", "a,b"] {
            assert!(prepare_state(root.path(), node, false).is_err(), "{node}");
        }
        let run_dir = RunDir::new(root.path().join("run"));
        let tpm = Tpm {
            state_dir: root.path().join("a,b"),
        };
        let err = swtpm_args(&tpm, &run_dir).unwrap_err().to_string();
        assert!(err.contains("comma"), "{err}");
    }

    /// A real swtpm: left behind by an "agent" that never let QEMU connect, it is ended by the
    /// next start in the same run directory, whose swtpm then initialises the TPM.
    #[tokio::test]
    async fn a_swtpm_no_qemu_connected_to_is_ended_by_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::new(dir.path().join("run"));
        run_dir.create().unwrap();
        let tpm = prepare_state(&dir.path().join(STATE_ROOT), "node-a", false).unwrap();
        let first = start(&tpm, &run_dir, None).await.unwrap();
        let pid: u32 = std::fs::read_to_string(run_dir.tpm_pidfile())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(crate::process::process_alive(pid));
        // As if the agent died here: nothing ends it.
        std::mem::forget(first);
        let second = start(&tpm, &run_dir, None).await.unwrap();
        assert!(
            !crate::process::process_alive(pid),
            "the stale swtpm lives on"
        );
        // CMD_INIT (2) with no flags over the control channel: 0 is success.
        use std::io::{Read, Write};
        let mut ctrl = std::os::unix::net::UnixStream::connect(run_dir.tpm_socket()).unwrap();
        ctrl.write_all(&[0, 0, 0, 2, 0, 0, 0, 0]).unwrap();
        let mut answer = [0xffu8; 4];
        ctrl.read_exact(&mut answer).unwrap();
        assert_eq!(answer, [0, 0, 0, 0]);
        assert!(tpm.state_dir.join(STATE_FILE).exists());
        // No QEMU took it over: dropping the handle ends it.
        let pid: u32 = std::fs::read_to_string(run_dir.tpm_pidfile())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(second);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while crate::process::process_alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "swtpm {pid} outlived its handle"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(ctrl);
    }

    #[test]
    fn qemu_gets_a_crb_device_on_the_socket() {
        let run_dir = RunDir::new("/run/vm");
        let args = args(&run_dir);
        assert!(args.contains(&"socket,id=chrtpm,path=/run/vm/swtpm.sock".to_string()));
        assert!(args.contains(&"tpm-crb,tpmdev=tpm0".to_string()));
    }
}
