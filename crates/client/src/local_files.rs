//! The client's end of handing a file to a control plane on the same host (the server's
//! `local_files` module describes the socket): open the file here, pass its descriptor, read
//! the one-line answer.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Passes `file` (opened read-only here) to the replica listening on `socket`, which must
/// answer as `server`; answers the ticket, or why the file could not be handed in.
pub(crate) fn hand_in(socket: &Path, file: &Path, server: &str) -> Result<String, String> {
    let opened = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let stream = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    novacron_tls::fd_pass::send_with_fd(stream.as_raw_fd(), b"F", opened.as_fd())
        .map_err(|e| format!("sending the descriptor: {e}"))?;
    let mut answer = String::new();
    (&stream)
        .take(512)
        .read_to_string(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    parse_answer(&answer, server)
}

/// `ok TICKET SERVER` from `server`: the ticket; anything else: why not.
fn parse_answer(answer: &str, server: &str) -> Result<String, String> {
    let answer = answer.trim_end();
    if let Some(why) = answer.strip_prefix("error ") {
        return Err(why.to_string());
    }
    let mut words = answer.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("ok"), Some(ticket), Some(from), None) if from == server => Ok(ticket.to_string()),
        (Some("ok"), Some(_), Some(from), None) => Err(format!(
            "the socket belongs to replica {from}, not to {server} that named it"
        )),
        _ => Err(format!("unexpected answer {answer:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn only_a_ticket_from_the_named_replica_counts() {
        assert_eq!(parse_answer("ok abc cp-1\n", "cp-1"), Ok("abc".into()));
        assert!(
            parse_answer("ok abc cp-2\n", "cp-1")
                .unwrap_err()
                .contains("cp-2")
        );
        assert_eq!(parse_answer("error busy\n", "cp-1"), Err("busy".into()));
        assert!(parse_answer("", "cp-1").is_err());
        assert!(parse_answer("ok abc cp-1 extra", "cp-1").is_err());
    }
}
