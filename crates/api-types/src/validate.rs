//! Checks of request bodies that need nothing but the body: the control plane runs them on
//! every request and the client SDK (so the CLI) before sending, so a bad input is refused
//! the same way, with the same message, wherever it comes from. Checks that need the
//! cluster's state (does the image exist, is there room) stay in the control plane.

use std::collections::HashSet;

use crate::{
    ApiError, BuildTinyRequest, ImageLocalImportRequest, ImageUrlImportRequest, NameError, Network,
    OvaLocalImportRequest, PortForward, StorageKind, StoragePool, VmCreateRequest, format_size,
    validate_name,
};

/// A request the control plane would refuse, with the user's one-line answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    fn new(message: impl Into<String>) -> Self {
        Invalid(message.into())
    }
}

impl From<NameError> for Invalid {
    fn from(e: NameError) -> Self {
        Invalid(e.to_string())
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::invalid(e.0)
    }
}

/// Smallest memory a VM may have.
pub const MIN_MEMORY_BYTES: u64 = 16 << 20;
/// Smallest memory a UEFI VM may have. OVMF (Debian's 4 MiB build) fails inside the
/// firmware with 128 MiB and a 14 MB kernel plus 30 MB initrd, and boots it with 160 MiB;
/// 256 MiB leaves room for larger boot loaders (measured under QEMU 7.2, TCG).
pub const MIN_UEFI_MEMORY_BYTES: u64 = 256 << 20;
/// Most vCPUs a VM may have.
pub const MAX_CPUS: u32 = 256;
/// Longest Linux interface name (IFNAMSIZ less the terminating NUL).
pub const MAX_BRIDGE_NAME_BYTES: usize = 15;

/// A host → guest port forward: both ports 1–65535.
pub fn port_forward(host_port: u32, guest_port: u32) -> Result<(), Invalid> {
    let ok = |p: u32| (1..=u32::from(u16::MAX)).contains(&p);
    if ok(host_port) && ok(guest_port) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid forward {host_port}:{guest_port}: ports must be between 1 and 65535"
        )))
    }
}

/// `HOSTPORT:GUESTPORT`, e.g. `2222:22`, checked as [`port_forward`].
pub fn parse_port_forward(s: &str) -> Result<PortForward, Invalid> {
    let bad = || {
        Invalid(format!(
            "invalid forward {s:?}: expected HOSTPORT:GUESTPORT, e.g. 2222:22"
        ))
    };
    let (h, g) = s.split_once(':').ok_or_else(bad)?;
    let host_port: u32 = h.trim().parse().map_err(|_| bad())?;
    let guest_port: u32 = g.trim().parse().map_err(|_| bad())?;
    port_forward(host_port, guest_port)?;
    Ok(PortForward {
        host_port: host_port as u16,
        guest_port: guest_port as u16,
    })
}

/// A Linux bridge name as the kernel accepts it (`dev_valid_name`): 1–15 bytes, not `.` or
/// `..`, no `/`, `:`, whitespace or control characters. It ends up in `ip link` arguments
/// and in QEMU's command line.
pub fn bridge_name(name: &str) -> Result<(), Invalid> {
    let bad = |why: &str| Invalid(format!("invalid bridge name {name:?}: {why}"));
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_BRIDGE_NAME_BYTES {
        return Err(bad("Linux interface names are at most 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("it must not be . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "it must not hold '/', ':', spaces or control characters",
        ));
    }
    Ok(())
}

const SSH_KEY_HELP: &str =
    "an --ssh-key file does not hold an OpenSSH public key (one line, e.g. ssh-ed25519 AAAA...)";

/// One OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
pub fn ssh_key(key: &str) -> Result<(), Invalid> {
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or("");
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    if !known || words.next().is_none() || key.contains(['\n', '\r', '\0']) {
        return Err(Invalid::new(SSH_KEY_HELP));
    }
    Ok(())
}

/// The keys of an `authorized_keys`-style file (blank lines and `#` comments skipped). A file
/// with no key is refused: it is a mistake (an empty or wrong file), not "no keys".
pub fn ssh_keys_from_file(text: &str) -> Result<Vec<String>, Invalid> {
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        return Err(Invalid::new(SSH_KEY_HELP));
    }
    for k in &keys {
        ssh_key(k)?;
    }
    Ok(keys)
}

/// The network part of a VM.
pub fn network(net: &Network) -> Result<(), Invalid> {
    match net {
        Network::Bridge { bridge } => bridge_name(bridge),
        Network::User { forwards } => {
            let mut seen = HashSet::new();
            for f in forwards {
                port_forward(f.host_port.into(), f.guest_port.into())?;
                if !seen.insert(f.host_port) {
                    return Err(Invalid(format!(
                        "host port {} is forwarded twice",
                        f.host_port
                    )));
                }
            }
            Ok(())
        }
        Network::None => Ok(()),
    }
}

/// Whether a VM of `memory_bytes` can boot through `firmware`, with Secure Boot or not.
pub fn check_firmware(
    firmware: crate::Firmware,
    secure_boot: bool,
    memory_bytes: u64,
) -> Result<(), Invalid> {
    if secure_boot && firmware != crate::Firmware::Uefi {
        return Err(Invalid::new(
            "--secure-boot is a UEFI feature: add --firmware uefi",
        ));
    }
    if firmware == crate::Firmware::Uefi && memory_bytes < MIN_UEFI_MEMORY_BYTES {
        return Err(Invalid(format!(
            "--firmware uefi needs --memory {} or more (the firmware itself runs out below that), got {}",
            format_size(MIN_UEFI_MEMORY_BYTES),
            format_size(memory_bytes)
        )));
    }
    Ok(())
}

impl VmCreateRequest {
    /// Everything about the request that does not depend on the cluster.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_carrying(false)
    }

    /// [`VmCreateRequest::validate`] for a clone or a restore, which may also carry NICs on
    /// NovaCron networks added to its source after create (`carries_overlay_nics`):
    /// `bandwidth_bps` then limits those too, even with no NIC of the request's own.
    pub fn validate_carrying(&self, carries_overlay_nics: bool) -> Result<(), Invalid> {
        validate_name("vm", &self.name)?;
        validate_name("image", &self.image)?;
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(Invalid(format!(
                "--cpus must be between 1 and {MAX_CPUS}, got {}",
                self.cpus
            )));
        }
        if let Some(firmware) = self.firmware {
            check_firmware(firmware, self.secure_boot, self.memory_bytes)?;
        }
        if self.memory_bytes < MIN_MEMORY_BYTES {
            return Err(Invalid(format!(
                "--memory must be at least {}, got {}",
                format_size(MIN_MEMORY_BYTES),
                format_size(self.memory_bytes)
            )));
        }
        if !self.memory_bytes.is_multiple_of(1 << 20) {
            return Err(Invalid::new(
                "--memory must be a whole number of MiB (e.g. 256M)",
            ));
        }
        if let Some(d) = self.disk_bytes
            && (d < (1 << 20) || !d.is_multiple_of(512))
        {
            return Err(Invalid::new(
                "--disk must be at least 1M and a multiple of 512 bytes",
            ));
        }
        if let Some(n) = &self.node {
            validate_name("node", n)?;
        }
        if let Some(pool) = &self.storage {
            validate_name("storage pool", pool)?;
        }
        network(&self.network)?;
        overlay_nics(&self.nics)?;
        if let Some(bps) = self.bandwidth_bps {
            bandwidth(bps)?;
            if self.nics.is_empty() && !carries_overlay_nics {
                return Err(Invalid::new(
                    "--bandwidth limits the VM's NICs on NovaCron networks: add --network NET",
                ));
            }
        }
        for key in &self.ssh_keys {
            ssh_key(key)?;
        }
        crate::labels::labels(&self.labels)?;
        if let Some(d) = &self.description {
            crate::labels::description(d)?;
        }
        if let Some(u) = &self.user_data {
            crate::cloud_init::cloud_config("--user-data", u)?;
        }
        if let Some(v) = &self.vendor_data {
            crate::cloud_init::cloud_config("--vendor-data", v)?;
        }
        if self.ha == crate::HaPolicy::Restart && self.storage.is_none() {
            return Err(Invalid::new(
                "--ha restart needs the disk on shared storage: add --storage POOL (see `novacron storage add`)",
            ));
        }
        Ok(())
    }
}

/// A NIC limit in bits per second within the range `--bandwidth` accepts.
fn bandwidth(bps: u64) -> Result<(), Invalid> {
    use crate::size::{MAX_BANDWIDTH_BPS, MIN_BANDWIDTH_BPS, format_bandwidth};
    if (MIN_BANDWIDTH_BPS..=MAX_BANDWIDTH_BPS).contains(&bps) {
        return Ok(());
    }
    Err(Invalid(format!(
        "--bandwidth must be between {} and {}, got {bps} bit/s",
        format_bandwidth(MIN_BANDWIDTH_BPS),
        format_bandwidth(MAX_BANDWIDTH_BPS)
    )))
}

/// Most overlay NICs one VM may have.
pub const MAX_OVERLAY_NICS: usize = 4;

/// The checks on `--network NET [--ip A] [--mac M]` that need no cluster state.
fn overlay_nics(nics: &[crate::overlay::NicRequest]) -> Result<(), Invalid> {
    if nics.len() > MAX_OVERLAY_NICS {
        return Err(Invalid(format!(
            "at most {MAX_OVERLAY_NICS} --network NICs per VM, got {}",
            nics.len()
        )));
    }
    for (i, nic) in nics.iter().enumerate() {
        validate_name("network", &nic.network)?;
        if nics[..i].iter().any(|n| n.network == nic.network) {
            return Err(Invalid(format!(
                "--network {} is given twice: a VM has at most one NIC per network",
                nic.network
            )));
        }
        if let Some(ip) = &nic.ip {
            ip.trim().parse::<std::net::Ipv4Addr>().map_err(|_| {
                Invalid(format!(
                    "invalid --ip {ip:?}: expected an IPv4 address, e.g. 10.10.0.5"
                ))
            })?;
        }
        if let Some(mac) = &nic.mac {
            crate::overlay::parse_mac(mac)?;
        }
    }
    Ok(())
}

impl crate::VmSetRequest {
    /// Everything about the change that does not depend on the cluster; nothing at all to
    /// change is refused too.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(c) = self.cpus
            && (c == 0 || c > MAX_CPUS)
        {
            return Err(Invalid(format!(
                "--cpus must be between 1 and {MAX_CPUS}, got {c}"
            )));
        }
        if let Some(m) = self.memory_bytes {
            if m < MIN_MEMORY_BYTES {
                return Err(Invalid(format!(
                    "--memory must be at least {}, got {}",
                    format_size(MIN_MEMORY_BYTES),
                    format_size(m)
                )));
            }
            if !m.is_multiple_of(1 << 20) {
                return Err(Invalid::new(
                    "--memory must be a whole number of MiB (e.g. 256M)",
                ));
            }
        }
        crate::labels::labels(&self.labels)?;
        for k in &self.remove_labels {
            crate::labels::label_key(k)?;
            if self.labels.contains_key(k) {
                return Err(Invalid(format!(
                    "label {k} is both set and removed: choose one"
                )));
            }
        }
        if let Some(d) = &self.description {
            crate::labels::description(d)?;
        }
        if let Some(bps) = self.bandwidth_bps.filter(|b| *b != 0) {
            bandwidth(bps)?;
        }
        if self.cpus.is_none()
            && self.memory_bytes.is_none()
            && self.labels.is_empty()
            && self.remove_labels.is_empty()
            && self.description.is_none()
            && self.bandwidth_bps.is_none()
        {
            return Err(Invalid::new(
                "nothing to change: give --cpus, --memory, --label, --remove-label, --description or --bandwidth",
            ));
        }
        Ok(())
    }
}

impl BuildTinyRequest {
    pub fn validate(&self) -> Result<(), Invalid> {
        Ok(validate_name("image", &self.name)?)
    }
}

impl ImageUrlImportRequest {
    /// An http(s) URL with a host, and a SHA-256 of 64 hex digits when given.
    pub fn validate(&self) -> Result<(), Invalid> {
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"))
            .ok_or_else(|| {
                Invalid::new(format!(
                    "{:?} is not an http:// or https:// URL (a local file is uploaded: give its path)",
                    self.url
                ))
            })?;
        if rest.is_empty() || rest.starts_with('/') || self.url.chars().any(char::is_whitespace) {
            return Err(Invalid::new(format!("{:?} is not a valid URL", self.url)));
        }
        check_sha256(self.sha256.as_deref())
    }
}

impl ImageLocalImportRequest {
    /// A ticket as the local-files socket gives them (32 hex digits), a SHA-256 of 64 hex
    /// digits when given.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_ticket(&self.ticket)?;
        check_sha256(self.sha256.as_deref())
    }
}

impl OvaLocalImportRequest {
    /// A ticket as the local-files socket gives them (32 hex digits).
    pub fn validate(&self) -> Result<(), Invalid> {
        check_ticket(&self.ticket)
    }
}

/// A local-file ticket is 32 hex digits, as the local-files socket answers.
fn check_ticket(ticket: &str) -> Result<(), Invalid> {
    if ticket.len() != 32 || !ticket.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Invalid::new(format!(
            "{ticket:?} is not a local-file ticket (32 hex digits, as the local-files socket answers)"
        )));
    }
    Ok(())
}

/// `--sha256` is a SHA-256 digest (64 hex digits) when given.
fn check_sha256(sum: Option<&str>) -> Result<(), Invalid> {
    match sum {
        Some(sum) if sum.len() != 64 || !sum.chars().all(|c| c.is_ascii_hexdigit()) => {
            Err(Invalid::new(format!(
                "--sha256 {sum:?} is not a SHA-256 digest (64 hex digits)"
            )))
        }
        _ => Ok(()),
    }
}

impl StoragePool {
    /// The name and, for a shared directory, an absolute path without `..` that is not `/`.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_name("storage pool", &self.name)?;
        match self.kind {
            StorageKind::SharedDir => {
                if !self.path.starts_with('/')
                    || self.path.contains("/../")
                    || self.path.ends_with("/..")
                    || self.path.contains(['\n', '\0'])
                {
                    return Err(Invalid(format!(
                        "--path must be an absolute path, got {:?}",
                        self.path
                    )));
                }
                if self.path.trim_end_matches('/').is_empty() {
                    return Err(Invalid::new("--path must not be /"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> VmCreateRequest {
        serde_json::from_value(serde_json::json!({
            "name": "web1", "image": "tiny", "cpus": 1, "memory_bytes": 256u64 << 20
        }))
        .unwrap()
    }

    #[test]
    fn uefi_requests() {
        let mut r = vm();
        r.secure_boot = true;
        r.firmware = Some(crate::Firmware::Bios);
        assert!(r.validate().unwrap_err().0.contains("--firmware uefi"));
        assert!(
            check_firmware(crate::Firmware::Bios, true, 1 << 30)
                .unwrap_err()
                .0
                .contains("--firmware uefi")
        );
        r.firmware = Some(crate::Firmware::Uefi);
        assert!(r.validate().is_ok());
        r.memory_bytes = MIN_UEFI_MEMORY_BYTES - (1 << 20);
        let e = r.validate().unwrap_err().0;
        assert!(
            e.contains("--memory 256M or more") && e.contains("255M"),
            "{e}"
        );
        let parsed: VmCreateRequest = serde_json::from_value(serde_json::json!({
            "name": "a", "image": "tiny", "cpus": 1, "memory_bytes": 256u64 << 20,
            "firmware": "uefi", "secure_boot": true
        }))
        .unwrap();
        assert_eq!(parsed.firmware, Some(crate::Firmware::Uefi));
        assert_eq!(
            vm().firmware,
            None,
            "the image's (else BIOS) when not given"
        );
    }

    #[test]
    fn port_forwards() {
        assert_eq!(
            parse_port_forward("2222:22").unwrap(),
            PortForward {
                host_port: 2222,
                guest_port: 22
            }
        );
        for bad in ["0:0", "0:22", "2222:0", "70000:22", "22:65536"] {
            let e = parse_port_forward(bad).unwrap_err().to_string();
            assert!(
                e.contains("ports must be between 1 and 65535"),
                "{bad}: {e}"
            );
        }
        for bad in ["22", "a:b", ":22", "-1:22"] {
            assert!(parse_port_forward(bad).is_err(), "{bad}");
        }
        let mut r = vm();
        r.network = Network::User {
            forwards: vec![PortForward {
                host_port: 0,
                guest_port: 0,
            }],
        };
        // The API body and the CLI flag get the same answer.
        assert_eq!(
            r.validate().unwrap_err(),
            parse_port_forward("0:0").unwrap_err()
        );
    }

    #[test]
    fn bridge_names() {
        for ok in ["br0", "virbr0", "a", "br-lan.10", &"b".repeat(15)] {
            assert!(bridge_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "br 0",
            "br\n0",
            "br\t0",
            "br/0",
            "br:0",
            "br\0",
            &"b".repeat(16),
        ] {
            assert!(bridge_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_keys() {
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@host";
        assert_eq!(
            ssh_keys_from_file(&format!("# mine\n\n{k}\n")).unwrap(),
            vec![k]
        );
        for bad in ["", "\n\n# only a comment\n", "hello world", "ssh-ed25519"] {
            let e = ssh_keys_from_file(bad).unwrap_err();
            assert_eq!(e.0, SSH_KEY_HELP, "{bad:?}");
        }
        // An empty key in a request body is refused with the message an empty file gets.
        let mut r = vm();
        r.ssh_keys = vec![String::new()];
        assert_eq!(
            r.validate().unwrap_err(),
            ssh_keys_from_file("").unwrap_err()
        );
    }

    #[test]
    fn vm_requests() {
        assert!(vm().validate().is_ok());
        let mut r = vm();
        r.cpus = 0;
        assert!(r.validate().unwrap_err().0.contains("--cpus"));
        let mut r = vm();
        r.memory_bytes = 1 << 20;
        assert!(r.validate().unwrap_err().0.contains("--memory"));
        let mut r = vm();
        r.name = "Web".into();
        assert!(r.validate().unwrap_err().0.contains("invalid vm name"));
        let mut r = vm();
        r.network = Network::Bridge {
            bridge: "br0\nx".into(),
        };
        assert!(r.validate().unwrap_err().0.contains("invalid bridge name"));
    }

    #[test]
    fn request_bodies_refuse_unknown_fields() {
        let e = serde_json::from_value::<VmCreateRequest>(serde_json::json!({
            "name": "web1", "image": "tiny", "cpus": 1, "memory_bytes": 1u64 << 28, "cpu": 2
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `cpu`"), "{e}");
        let e = serde_json::from_value::<VmCreateRequest>(serde_json::json!({
            "name": "web1", "image": "tiny", "cpus": 1, "memory_bytes": 1u64 << 28,
            "network": {"mode": "bridge", "bridge": "br0", "vlan": 3}
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `vlan`"), "{e}");
        let e = serde_json::from_value::<crate::backup::PruneRequest>(
            serde_json::json!({"keep_last": 2, "keep_lats": 3}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `keep_lats`"), "{e}");
        let p: crate::backup::PruneRequest =
            serde_json::from_value(serde_json::json!({"keep_last": 2, "dry_run": true})).unwrap();
        assert_eq!(p.retention.keep_last, 2);
        assert!(p.dry_run);
        // The wire shape of prune is unchanged (retention fields at the top level).
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["keep_last"], 2);
    }
}
