//! `vm exec`: a command run inside a running guest through its qemu-guest-agent, and what it
//! did. The control plane passes the request to the VM's agent unchanged.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiError;

/// The most words a command may have.
pub const MAX_ARGS: usize = 256;
/// The longest word of a command, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// The most input a command may be given, in bytes (before base64).
pub const MAX_STDIN_BYTES: usize = 1 << 20;
/// How long a command is waited for when the request does not say.
pub const DEFAULT_TIMEOUT_S: u64 = 60;
/// The longest wait a request may ask for.
pub const MAX_TIMEOUT_S: u64 = 240;

/// Body of `POST /api/v1/vms/{name}/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The program and its arguments, not parsed by a shell; the program is looked up on the
    /// guest's PATH. Use `["sh", "-c", "..."]` for a shell line.
    pub command: Vec<String>,
    /// Bytes for the command's standard input, base64-encoded (at most 1 MiB decoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
    /// Seconds to wait for the command to end (default 60, at most 240). A command still
    /// running then keeps running in the guest; the error names its pid there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

impl ExecRequest {
    /// A request for `command`, with `stdin` as its input.
    pub fn new(command: Vec<String>, stdin: Option<&[u8]>, timeout_s: Option<u64>) -> Self {
        use base64::Engine;
        ExecRequest {
            command,
            stdin_base64: stdin.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            timeout_s,
        }
    }

    /// Checks what can be checked without the guest; answers the decoded input, if any.
    pub fn validate(&self) -> Result<Option<Vec<u8>>, ApiError> {
        use base64::Engine;
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(ApiError::invalid(
                "no command to run: give it after `--`, e.g. `novacron vm exec web1 -- uname -a`",
            ));
        }
        if self.command.len() > MAX_ARGS {
            return Err(ApiError::invalid(format!(
                "the command has {} words; at most {MAX_ARGS}",
                self.command.len()
            )));
        }
        if let Some(long) = self.command.iter().find(|w| w.len() > MAX_ARG_BYTES) {
            return Err(ApiError::invalid(format!(
                "a word of the command is {} bytes long; at most {MAX_ARG_BYTES}",
                long.len()
            )));
        }
        if self.command.iter().any(|w| w.contains('\0')) {
            return Err(ApiError::invalid(
                "a word of the command contains a NUL byte",
            ));
        }
        if let Some(t) = self.timeout_s
            && !(1..=MAX_TIMEOUT_S).contains(&t)
        {
            return Err(ApiError::invalid(format!(
                "--timeout {t}s: give 1 to {MAX_TIMEOUT_S} seconds"
            )));
        }
        let Some(encoded) = &self.stdin_base64 else {
            return Ok(None);
        };
        if encoded.len() > MAX_STDIN_BYTES.div_ceil(3) * 4 {
            return Err(ApiError::invalid(format!(
                "the command's input is over {} bytes",
                MAX_STDIN_BYTES
            )));
        }
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Some)
            .map_err(|e| ApiError::invalid(format!("stdin_base64 is not base64: {e}")))
    }

    /// The wait the request asks for, or the default.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S))
    }
}

/// How `stdout` and `stderr` of an [`ExecResult`] are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputEncoding {
    /// As text: both streams were valid UTF-8.
    Utf8,
    /// In base64: at least one stream was not UTF-8.
    Base64,
}

/// What a command run in the guest did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    /// Its exit status; absent when a signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `utf8`, or `base64` when either stream was not UTF-8 text.
    pub encoding: OutputEncoding,
    /// The guest agent kept only the first 16 MiB of the stream.
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
    /// Milliseconds from asking the guest to the command's end.
    pub elapsed_ms: u64,
}

impl ExecResult {
    /// Builds the answer from the raw streams, as text when both are UTF-8.
    pub fn from_streams(stdout: Vec<u8>, stderr: Vec<u8>) -> (String, String, OutputEncoding) {
        use base64::Engine;
        match (String::from_utf8(stdout), String::from_utf8(stderr)) {
            (Ok(out), Ok(err)) => (out, err, OutputEncoding::Utf8),
            (out, err) => {
                let bytes = |r: Result<String, std::string::FromUtf8Error>| match r {
                    Ok(s) => s.into_bytes(),
                    Err(e) => e.into_bytes(),
                };
                let b64 = base64::engine::general_purpose::STANDARD;
                (
                    b64.encode(bytes(out)),
                    b64.encode(bytes(err)),
                    OutputEncoding::Base64,
                )
            }
        }
    }

    /// The streams' bytes, whichever the encoding.
    pub fn streams(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        use base64::Engine;
        match self.encoding {
            OutputEncoding::Utf8 => Ok((
                self.stdout.clone().into_bytes(),
                self.stderr.clone().into_bytes(),
            )),
            OutputEncoding::Base64 => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let decode = |s: &str| b64.decode(s).map_err(|e| format!("bad base64: {e}"));
                Ok((decode(&self.stdout)?, decode(&self.stderr)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(words: &[&str]) -> ExecRequest {
        ExecRequest {
            command: words.iter().map(|w| w.to_string()).collect(),
            stdin_base64: None,
            timeout_s: None,
        }
    }

    #[test]
    fn bad_requests_say_what_to_fix() {
        let said = |r: ExecRequest| r.validate().unwrap_err().message;
        assert!(said(request(&[])).contains("no command"));
        assert!(said(request(&[""])).contains("no command"));
        assert!(said(request(&["a\0b"])).contains("NUL"));
        let long = "x".repeat(MAX_ARG_BYTES + 1);
        assert!(said(request(&["echo", &long])).contains("bytes long"));
        let many = vec!["x"; MAX_ARGS + 1];
        assert!(said(request(&many)).contains("words"));
        for t in [0, MAX_TIMEOUT_S + 1] {
            let r = ExecRequest {
                timeout_s: Some(t),
                ..request(&["true"])
            };
            assert!(said(r).contains("--timeout"));
        }
        let r = ExecRequest {
            stdin_base64: Some("%%%".into()),
            ..request(&["cat"])
        };
        assert!(said(r).contains("not base64"));
    }

    #[test]
    fn input_decodes_and_output_round_trips_in_either_encoding() {
        let r = ExecRequest {
            stdin_base64: Some("aGk=".into()),
            timeout_s: Some(5),
            ..request(&["cat"])
        };
        assert_eq!(r.validate().unwrap(), Some(b"hi".to_vec()));
        assert_eq!(r.timeout().as_secs(), 5);
        for (out, err, encoding) in [
            (b"text\n".to_vec(), b"".to_vec(), OutputEncoding::Utf8),
            (b"text".to_vec(), vec![0xFF, 0], OutputEncoding::Base64),
        ] {
            let (stdout, stderr, got) = ExecResult::from_streams(out.clone(), err.clone());
            assert_eq!(got, encoding);
            let result = ExecResult {
                exit_code: Some(0),
                signal: None,
                stdout,
                stderr,
                encoding: got,
                stdout_truncated: false,
                stderr_truncated: false,
                elapsed_ms: 1,
            };
            assert_eq!(result.streams().unwrap(), (out, err));
        }
    }
}
