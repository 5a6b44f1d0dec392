//! Files handed to the control plane by a client on its own host: the client opens the file it
//! imports and passes the descriptor over a unix socket in the data directory (SCM_RIGHTS); the
//! replica keeps it under a random one-use ticket, and `POST /api/v1/images/{name}/import-local`
//! (with the caller's token and role, like every route) imports from it. The file's bytes then
//! go from the disk to the import instead of through TLS on loopback.
//!
//! What a descriptor proves: the sender could open the file for reading. Reading it through the
//! control plane grants nothing more; the bytes are copied into the import's private scratch
//! (never read in place, so a file changed mid-import cannot change what was vetted).
//!
//! The socket protocol: the client sends one byte (`F`) with the descriptor attached; the
//! replica answers one line, `ok TICKET SERVER` (32 hex digits, its member id) or
//! `error MESSAGE`, and closes the connection.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

/// How long a ticket stays valid after the descriptor arrived.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Descriptors held at once (tickets not yet used), all senders together.
pub const MAX_HELD: usize = 64;
/// Descriptors held at once for one local user (peer uid).
pub const MAX_HELD_PER_USER: usize = 8;
/// How long a connection may take to send its descriptor.
const HAND_IN_TIMEOUT: Duration = Duration::from_secs(5);
/// The socket's name in the data directory.
pub const SOCKET_NAME: &str = "local-files.sock";

/// A file handed in: the open descriptor, its size when it arrived, who sent it.
#[derive(Debug)]
pub struct HandedFile {
    pub file: std::fs::File,
    pub size: u64,
    pub uid: u32,
}

struct Held {
    file: HandedFile,
    since: Instant,
}

/// The replica's held descriptors and the socket they arrive on.
pub struct LocalFiles {
    socket: PathBuf,
    server: String,
    held: Mutex<HashMap<String, Held>>,
}

impl LocalFiles {
    /// Listens on `socket` (a stale socket file there is replaced). Mode 0600, like everything
    /// in the data directory: only the control plane's own user (root on a node) hands files
    /// in; other local users upload. A descriptor would prove its own access, but the socket
    /// is one more thing to flood, and the ticket is useless without a token allowed to import
    /// anyway. `server` is the replica's member id, answered with each ticket.
    pub fn bind(socket: &Path, server: &str) -> std::io::Result<(Arc<LocalFiles>, UnixListener)> {
        use std::os::unix::fs::PermissionsExt;
        if socket.as_os_str().len() >= 108 {
            return Err(std::io::Error::other(format!(
                "{} is too long for a unix socket path",
                socket.display()
            )));
        }
        match std::fs::remove_file(socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(socket)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        let files = Arc::new(LocalFiles {
            socket: socket.to_path_buf(),
            server: server.to_string(),
            held: Mutex::new(HashMap::new()),
        });
        Ok((files, listener))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Keeps `file` under a new ticket, unless too many are held (for everyone or for its
    /// sender); expired ones are dropped first.
    pub fn hold(&self, file: HandedFile) -> Result<String, String> {
        let mut held = lock(&self.held);
        held.retain(|_, h| h.since.elapsed() < TICKET_TTL);
        if held.len() >= MAX_HELD {
            return Err(format!(
                "{MAX_HELD} handed files are waiting for their import already: try again in a minute"
            ));
        }
        if held.values().filter(|h| h.file.uid == file.uid).count() >= MAX_HELD_PER_USER {
            return Err(format!(
                "user {} has {MAX_HELD_PER_USER} handed files waiting for their import already: try again in a minute",
                file.uid
            ));
        }
        let ticket = new_ticket();
        held.insert(
            ticket.clone(),
            Held {
                file,
                since: Instant::now(),
            },
        );
        Ok(ticket)
    }

    /// The file held under `ticket` (once: the ticket is spent), if it has not expired.
    pub fn take(&self, ticket: &str) -> Option<HandedFile> {
        let held = lock(&self.held).remove(ticket)?;
        (held.since.elapsed() < TICKET_TTL).then_some(held.file)
    }
}

impl Drop for LocalFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Inserts and removes only: a panic while held cannot leave the map inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn new_ticket() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts hand-ins until the listener fails (the task is aborted when the server stops).
pub async fn serve(files: Arc<LocalFiles>, listener: UnixListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "local-files socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let files = files.clone();
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(HAND_IN_TIMEOUT, hand_in(&files, &stream)).await
            {
                Ok(Ok(ticket)) => format!("ok {ticket} {}\n", files.server),
                Ok(Err(why)) => format!("error {why}\n"),
                Err(_) => format!(
                    "error no descriptor within {}s\n",
                    HAND_IN_TIMEOUT.as_secs()
                ),
            };
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes()).await;
        });
    }
}

/// Receives one descriptor from `stream` and holds it; answers its ticket or why not.
async fn hand_in(files: &LocalFiles, stream: &UnixStream) -> Result<String, String> {
    let uid = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the sender's credentials: {e}"))?
        .uid();
    let fd = loop {
        stream
            .readable()
            .await
            .map_err(|e| format!("reading the socket: {e}"))?;
        let mut byte = [0u8; 1];
        match stream.try_io(tokio::io::Interest::READABLE, || {
            novacron_tls::fd_pass::recv_with_fd(stream.as_raw_fd(), &mut byte)
        }) {
            Ok((0, _)) => return Err("the connection closed before a descriptor came".into()),
            Ok((_, fd)) => break fd,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("reading the socket: {e}")),
        }
    };
    let fd = fd.ok_or("no descriptor came with the request (send one with SCM_RIGHTS)")?;
    let file = readable_regular_file(fd)?;
    files.hold(file_of(file, uid)?)
}

/// The descriptor as a file, if it is a regular file open for reading.
fn readable_regular_file(fd: OwnedFd) -> Result<std::fs::File, String> {
    // SAFETY: F_GETFL on a descriptor this process owns reads its status flags only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(format!(
            "cannot read the descriptor's flags: {}",
            std::io::Error::last_os_error()
        ));
    }
    if flags & libc::O_PATH != 0 || flags & libc::O_ACCMODE == libc::O_WRONLY {
        return Err("the descriptor is not open for reading".into());
    }
    Ok(std::fs::File::from(fd))
}

fn file_of(file: std::fs::File, uid: u32) -> Result<HandedFile, String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat the file: {e}"))?;
    if !meta.is_file() {
        return Err("the descriptor is not a regular file".into());
    }
    Ok(HandedFile {
        file,
        size: meta.len(),
        uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed(uid: u32) -> HandedFile {
        file_of(std::fs::File::open("/proc/self/exe").unwrap(), uid).unwrap()
    }

    #[test]
    fn a_ticket_is_spent_once_and_holds_are_bounded_per_user_and_in_all() {
        let dir = std::env::temp_dir().join(format!("nc-local-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let (files, _listener) = LocalFiles::bind(&dir.join(SOCKET_NAME), "cp-1").unwrap();
        let ticket = files.hold(handed(1000)).unwrap();
        assert_eq!(ticket.len(), 32);
        assert!(files.take(&ticket).is_some());
        assert!(files.take(&ticket).is_none(), "a ticket is spent once");
        for _ in 0..MAX_HELD_PER_USER {
            files.hold(handed(1000)).unwrap();
        }
        let refused = files.hold(handed(1000)).unwrap_err();
        assert!(refused.contains("user 1000"), "{refused}");
        for uid in 0..(MAX_HELD - MAX_HELD_PER_USER) as u32 {
            files.hold(handed(2000 + uid)).unwrap();
        }
        let refused = files.hold(handed(5000)).unwrap_err();
        assert!(refused.contains("waiting for their import"), "{refused}");
        drop(files);
        assert!(!dir.join(SOCKET_NAME).exists(), "the socket goes with it");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_regular_files_open_for_reading_are_held() {
        let dir = std::fs::File::open("/proc").unwrap();
        assert!(file_of(dir, 0).unwrap_err().contains("not a regular file"));
        let write_only = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let why = readable_regular_file(OwnedFd::from(write_only)).unwrap_err();
        assert!(why.contains("not open for reading"), "{why}");
    }
}
