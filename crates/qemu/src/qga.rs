//! A client of qemu-guest-agent, the program a guest runs to take commands from its host
//! over a virtio-serial port named `org.qemu.guest_agent.0`. QEMU exposes that port as the
//! unix socket `qga.sock` in the VM's run directory ([`crate::RunDir::guest_agent_socket`]).
//!
//! Everything read here comes from the guest, which the host does not trust: every line is
//! bounded ([`MAX_LINE`]) and decoded by [`decode_reply`], [`decode_exec_status`] and
//! [`decode_interfaces`], which turn any input into a value or an error (fuzzed:
//! `fuzz/fuzz_targets/qga_reply.rs`).
//!
//! The socket takes one client at a time: [`crate::RunningVm::guest_agent`] hands out one
//! session per VM, the others wait. Each session starts with `guest-sync-delimited`, so a
//! reply meant for an earlier client that gave up is never taken for this one's.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::QemuError;

/// The virtio-serial port name qemu-guest-agent opens in the guest.
pub const GUEST_AGENT_PORT: &str = "org.qemu.guest_agent.0";

/// The longest reply line read from a guest: qemu-guest-agent keeps at most 16 MiB of a
/// command's output per stream, which is 4/3 longer in base64, twice (stdout and stderr).
pub const MAX_LINE: usize = 48 << 20;

/// How long a guest has to answer `guest-sync-delimited` before it is taken to run no agent.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// What a command run in the guest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit status, when it exited (not when a signal ended it).
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The guest agent kept only the first 16 MiB of a stream.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// One poll of `guest-exec-status`: `None` while the command still runs.
pub type ExecStatus = Option<ExecOutput>;

fn protocol(what: impl std::fmt::Display) -> QemuError {
    QemuError::GuestAgent(format!("the guest agent answered nonsense: {what}"))
}

/// The `return` value of one reply line (`{"return": ...}`), or the guest agent's error.
pub fn decode_reply(line: &[u8]) -> Result<Value, QemuError> {
    let value: Value = serde_json::from_slice(line).map_err(protocol)?;
    if let Some(ret) = value.get("return") {
        return Ok(ret.clone());
    }
    if let Some(err) = value.get("error") {
        let field = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        return Err(QemuError::GuestAgentRefused {
            class: field("class"),
            desc: field("desc"),
        });
    }
    Err(protocol("a reply with neither return nor error"))
}

/// Decodes the `return` of `guest-exec-status`.
pub fn decode_exec_status(ret: &Value) -> Result<ExecStatus, QemuError> {
    let exited = ret
        .get("exited")
        .and_then(Value::as_bool)
        .ok_or_else(|| protocol("guest-exec-status without `exited`"))?;
    if !exited {
        return Ok(None);
    }
    let int = |k: &str| -> Result<Option<i32>, QemuError> {
        match ret.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| protocol(format!("`{k}` is not a small integer"))),
        }
    };
    let data = |k: &str| -> Result<Vec<u8>, QemuError> {
        match ret.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| protocol(format!("`{k}` is not base64 ({e})"))),
            Some(_) => Err(protocol(format!("`{k}` is not a string"))),
        }
    };
    let flag = |k: &str| ret.get(k).and_then(Value::as_bool).unwrap_or(false);
    Ok(Some(ExecOutput {
        exit_code: int("exitcode")?,
        signal: int("signal")?,
        stdout: data("out-data")?,
        stderr: data("err-data")?,
        stdout_truncated: flag("out-truncated"),
        stderr_truncated: flag("err-truncated"),
    }))
}

/// One network interface as the guest sees it (`guest-network-get-interfaces`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestInterface {
    /// The guest's name for it, e.g. `eth0`.
    pub name: String,
    /// Its MAC address, when the guest reports one.
    pub mac: Option<String>,
    /// Its addresses with their prefix length, e.g. `10.0.2.15/24`, IPv4 first.
    pub ips: Vec<String>,
}

/// The most interfaces, and addresses per interface, kept from one guest's answer.
const MAX_INTERFACES: usize = 16;

/// Decodes the `return` of `guest-network-get-interfaces`: every interface but loopback,
/// with its addresses (link-local IPv6 ones left out), at most [`MAX_INTERFACES`] of each.
/// Names and addresses are checked to be what they claim, since the guest writes them.
pub fn decode_interfaces(ret: &Value) -> Result<Vec<GuestInterface>, QemuError> {
    let list = ret
        .as_array()
        .ok_or_else(|| protocol("guest-network-get-interfaces did not answer a list"))?;
    let mut interfaces = Vec::new();
    for entry in list {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            return Err(protocol("an interface without a name"));
        };
        let printable = |s: &str| s.len() <= 64 && s.chars().all(|c| c.is_ascii_graphic());
        if name == "lo" || !printable(name) {
            continue;
        }
        let mac = entry
            .get("hardware-address")
            .and_then(Value::as_str)
            .filter(|m| printable(m))
            .map(str::to_string);
        let mut ips: Vec<(bool, String)> = Vec::new();
        for addr in entry
            .get("ip-addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(ip) = addr
                .get("ip-address")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            else {
                continue;
            };
            let max_prefix = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = addr
                .get("prefix")
                .and_then(Value::as_u64)
                .filter(|p| *p <= max_prefix);
            if let std::net::IpAddr::V6(v6) = ip
                && v6.segments()[0] & 0xffc0 == 0xfe80
            {
                continue;
            }
            let text = match prefix {
                Some(p) => format!("{ip}/{p}"),
                None => ip.to_string(),
            };
            if ips.len() < MAX_INTERFACES {
                ips.push((ip.is_ipv6(), text));
            }
        }
        ips.sort();
        interfaces.push(GuestInterface {
            name: name.to_string(),
            mac,
            ips: ips.into_iter().map(|(_, t)| t).collect(),
        });
        if interfaces.len() == MAX_INTERFACES {
            break;
        }
    }
    Ok(interfaces)
}

/// A connection to one guest's agent. Dropping it closes the connection; a command the guest
/// started keeps running there.
pub struct GuestAgent {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl GuestAgent {
    /// Connects to the agent socket and synchronises: fails with a sentence saying the guest
    /// runs no agent when it does not answer within `sync_timeout`.
    pub async fn connect(socket: &Path, sync_timeout: Duration) -> Result<GuestAgent, QemuError> {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            QemuError::GuestAgent(format!(
                "cannot reach the guest agent channel {} ({e}); the VM may not be running",
                socket.display()
            ))
        })?;
        let (read_half, writer) = stream.into_split();
        let mut agent = GuestAgent {
            reader: BufReader::new(read_half),
            writer,
        };
        match tokio::time::timeout(sync_timeout, agent.sync()).await {
            Ok(synced) => synced?,
            Err(_) => {
                return Err(QemuError::GuestAgentSilent {
                    waited_s: sync_timeout.as_secs(),
                });
            }
        }
        Ok(agent)
    }

    /// `guest-sync-delimited`: the agent answers with a 0xFF byte before the reply, so what
    /// an earlier client left in the channel is skipped up to it.
    async fn sync(&mut self) -> Result<(), QemuError> {
        let id = u64::from(std::process::id()) << 32
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0);
        let id = id & ((1 << 53) - 1);
        // A leading 0xFF makes the agent drop any half-written command from an earlier client.
        let mut request = vec![0xFF];
        request.extend_from_slice(
            json!({"execute": "guest-sync-delimited", "arguments": {"id": id}})
                .to_string()
                .as_bytes(),
        );
        request.push(b'\n');
        self.write(&request).await?;
        loop {
            let mut byte = [0u8; 1];
            loop {
                self.reader
                    .read_exact(&mut byte)
                    .await
                    .map_err(|e| QemuError::GuestAgent(format!("guest agent channel: {e}")))?;
                if byte[0] == 0xFF {
                    break;
                }
            }
            let line = self.read_line().await?;
            if decode_reply(&line).ok().and_then(|v| v.as_u64()) == Some(id) {
                return Ok(());
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), QemuError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| QemuError::GuestAgent(format!("guest agent channel: {e}")))
    }

    /// One reply line, at most [`MAX_LINE`] bytes.
    async fn read_line(&mut self) -> Result<Vec<u8>, QemuError> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| QemuError::GuestAgent(format!("guest agent channel: {e}")))?;
        if read == 0 {
            return Err(QemuError::GuestAgent(
                "the guest agent channel closed (the VM stopped?)".into(),
            ));
        }
        if line.len() > MAX_LINE {
            return Err(protocol(format!("a reply longer than {MAX_LINE} bytes")));
        }
        Ok(line)
    }

    /// Runs one command and answers its `return` value.
    pub async fn call(&mut self, command: &str, arguments: Value) -> Result<Value, QemuError> {
        let mut request = json!({"execute": command});
        if !arguments.is_null() {
            request["arguments"] = arguments;
        }
        let mut bytes = request.to_string().into_bytes();
        bytes.push(b'\n');
        self.write(&bytes).await?;
        loop {
            let line = self.read_line().await?;
            // Blank lines and stray delimiters are not replies.
            if line.iter().all(|b| b.is_ascii_whitespace() || *b == 0xFF) {
                continue;
            }
            return decode_reply(&line);
        }
    }

    /// The guest's network interfaces and their addresses ([`decode_interfaces`]).
    pub async fn network_interfaces(&mut self) -> Result<Vec<GuestInterface>, QemuError> {
        let ret = self
            .call("guest-network-get-interfaces", Value::Null)
            .await?;
        decode_interfaces(&ret)
    }

    /// Runs `argv` in the guest (the first word found on the guest's PATH), with `stdin` as
    /// its input, and waits for it until `deadline`. A command still running then keeps
    /// running in the guest; the error names its pid there.
    pub async fn exec(
        &mut self,
        argv: &[String],
        stdin: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<ExecOutput, QemuError> {
        let (path, args) = argv
            .split_first()
            .ok_or_else(|| QemuError::GuestAgent("no command to run".into()))?;
        let mut arguments = json!({"path": path, "arg": args, "capture-output": true});
        if let Some(input) = stdin {
            arguments["input-data"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(input));
        }
        let started = self.call("guest-exec", arguments).await?;
        let pid = started
            .get("pid")
            .and_then(Value::as_i64)
            .ok_or_else(|| protocol("guest-exec without a pid"))?;
        let asked = Instant::now();
        // Short commands answer within a few polls; long ones are polled less often.
        let mut pause = Duration::from_millis(20);
        loop {
            let status = self.call("guest-exec-status", json!({"pid": pid})).await?;
            if let Some(done) = decode_exec_status(&status)? {
                return Ok(done);
            }
            if Instant::now() + pause > deadline {
                return Err(QemuError::GuestAgentStillRunning {
                    program: path.clone(),
                    pid,
                    waited_s: asked.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exited_command_decodes_with_its_output() {
        let ret =
            json!({"exited": true, "exitcode": 3, "out-data": "aGVsbG8K", "err-truncated": true});
        let out = decode_exec_status(&ret).unwrap().unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.signal, None);
        assert_eq!(out.stdout, b"hello\n");
        assert!(out.stderr.is_empty());
        assert!(out.stderr_truncated && !out.stdout_truncated);
    }

    #[test]
    fn a_running_command_is_none_and_bad_fields_are_errors() {
        assert_eq!(decode_exec_status(&json!({"exited": false})).unwrap(), None);
        for bad in [
            json!({}),
            json!({"exited": true, "exitcode": "0"}),
            json!({"exited": true, "exitcode": 1u64 << 40}),
            json!({"exited": true, "out-data": "not base64!"}),
            json!({"exited": true, "err-data": 7}),
        ] {
            assert!(decode_exec_status(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn interfaces_decode_without_loopback_link_local_or_nonsense() {
        let ret = json!([
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
            {"name": "eth0", "hardware-address": "52:54:00:12:34:56", "ip-addresses": [
                {"ip-address-type": "ipv6", "ip-address": "fe80::5054:ff:fe12:3456", "prefix": 64},
                {"ip-address-type": "ipv6", "ip-address": "2001:db8::5", "prefix": 64},
                {"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
                {"ip-address-type": "ipv4", "ip-address": "not-an-address", "prefix": 24},
                {"ip-address-type": "ipv4", "ip-address": "10.0.3.1", "prefix": 99}
            ]},
            {"name": "eth\u{1b}[31m1"},
            {"name": "eth2"}
        ]);
        let got = decode_interfaces(&ret).unwrap();
        assert_eq!(
            got,
            [
                GuestInterface {
                    name: "eth0".into(),
                    mac: Some("52:54:00:12:34:56".into()),
                    ips: vec![
                        "10.0.2.15/24".into(),
                        "10.0.3.1".into(),
                        "2001:db8::5/64".into()
                    ],
                },
                GuestInterface {
                    name: "eth2".into(),
                    mac: None,
                    ips: vec![],
                },
            ]
        );
        assert!(decode_interfaces(&json!({"name": "eth0"})).is_err());
        assert!(decode_interfaces(&json!([{"mac": "x"}])).is_err());
    }

    #[test]
    fn replies_decode_to_their_return_or_the_agents_error() {
        assert_eq!(
            decode_reply(br#"{"return": {"pid": 7}}"#).unwrap(),
            json!({"pid": 7})
        );
        let refused = decode_reply(
            br#"{"error": {"class": "GenericError", "desc": "Failed to execute child process"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("Failed to execute child process"),
            "{refused}"
        );
        assert!(decode_reply(b"{}").is_err());
        assert!(decode_reply(b"\xff\xfe").is_err());
    }

    /// A peer that stands in for the guest's end of the channel: it must skip what an earlier
    /// client left behind and take only the reply after the delimiter.
    #[tokio::test]
    async fn sync_skips_stale_replies_up_to_the_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qga.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read);
            let mut request = Vec::new();
            lines.read_until(b'\n', &mut request).await.unwrap();
            assert_eq!(request[0], 0xFF);
            let sync: Value = serde_json::from_slice(&request[1..]).unwrap();
            let id = sync["arguments"]["id"].as_u64().unwrap();
            // A stale reply, a wrong id after a delimiter, then the right one.
            let mut replies = b"{\"return\": {\"pid\": 1}}\n".to_vec();
            replies.push(0xFF);
            replies.extend_from_slice(format!("{{\"return\": {}}}\n", id + 1).as_bytes());
            replies.push(0xFF);
            replies.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
            write.write_all(&replies).await.unwrap();
            let mut next = Vec::new();
            lines.read_until(b'\n', &mut next).await.unwrap();
            let call: Value = serde_json::from_slice(&next).unwrap();
            assert_eq!(call["execute"], "guest-info");
            write
                .write_all(b"{\"return\": {\"version\": \"7.2.0\"}}\n")
                .await
                .unwrap();
        });
        let mut agent = GuestAgent::connect(&socket, Duration::from_secs(5))
            .await
            .unwrap();
        let info = agent.call("guest-info", Value::Null).await.unwrap();
        assert_eq!(info["version"], "7.2.0");
        peer.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_guest_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qga.sock");
        let _listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let err = GuestAgent::connect(&socket, Duration::from_millis(200))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("runs no qemu-guest-agent"), "{err}");
    }
}
