//! NICs `vm nic add` gives a VM after create, and the NIC operations the control plane asks
//! an agent to do (`vm nic add | remove`). An added NIC sits in one of the VM's spare PCIe
//! root ports, which it shares with added disks (docs/nics.md); it is named `nic<N>`,
//! after the NICs the VM was created with (`nic0` is the first of those).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiError;
use crate::overlay::Nic;

/// What an added NIC is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NicLink {
    /// An overlay network of the VM's project, with an address from its IPAM.
    Network {
        network: String,
        vni: u32,
        ips: Vec<String>,
    },
    /// A tap on an existing Linux bridge of the node.
    Bridge { bridge: String },
    /// QEMU's user-mode NAT on the node (outbound only).
    Nat,
}

/// A NIC `vm nic add` attached to a VM, in hot-plug port `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddedNic {
    /// `nic<N>`: how `vm show` and `vm nic remove` name it.
    pub name: String,
    pub port: u32,
    pub mac: String,
    pub link: NicLink,
}

impl AddedNic {
    /// The NIC as an overlay network sees it, when it is on one.
    pub fn overlay(&self) -> Option<Nic> {
        match &self.link {
            NicLink::Network { network, vni, ips } => Some(Nic {
                network: network.clone(),
                vni: *vni,
                mac: self.mac.clone(),
                ips: ips.clone(),
            }),
            NicLink::Bridge { .. } | NicLink::Nat => None,
        }
    }

    /// One line for `vm show`: what it is attached to.
    pub fn describe(&self) -> String {
        match &self.link {
            NicLink::Network { network, ips, .. } => {
                format!("network {network}, mac {}, ip {}", self.mac, ips.join(","))
            }
            NicLink::Bridge { bridge } => format!("bridge {bridge}, mac {}", self.mac),
            NicLink::Nat => format!("user NAT, mac {}", self.mac),
        }
    }
}

/// Whether `name` is of the form `nic<N>` (N a number without leading zero).
pub fn is_nic_name(name: &str) -> bool {
    name.strip_prefix("nic").is_some_and(|n| {
        !n.is_empty() && (n == "0" || !n.starts_with('0')) && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Body of `POST /api/v1/vms/{name}/nics`: exactly one of `network`, `bridge`, `nat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicAddRequest {
    /// An overlay network of the VM's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// An existing Linux bridge on the VM's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// User-mode NAT on the VM's node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat: bool,
    /// A fixed IPv4 address in the network's subnet (with `network` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A fixed MAC; otherwise a generated locally administered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl NicAddRequest {
    /// Every check that needs only the request.
    pub fn validate(&self) -> Result<(), ApiError> {
        let chosen = usize::from(self.network.is_some())
            + usize::from(self.bridge.is_some())
            + usize::from(self.nat);
        if chosen != 1 {
            return Err(ApiError::invalid(
                "say what the NIC attaches to, once: --network NET (an overlay network), --bridge BRIDGE (a Linux bridge on the node) or --nat",
            ));
        }
        if let Some(network) = &self.network {
            crate::validate_name("network", network)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        if let Some(bridge) = &self.bridge {
            crate::validate::bridge_name(bridge)
                .map_err(|e| ApiError::invalid(format!("--bridge: {e}")))?;
        }
        if self.ip.is_some() && self.network.is_none() {
            return Err(ApiError::invalid(
                "--ip goes with --network: only overlay networks give out addresses",
            ));
        }
        if let Some(mac) = &self.mac {
            crate::overlay::parse_mac(mac).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        Ok(())
    }
}

/// What the control plane asks a VM's agent: attach `nic` (plugged into the running guest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NicAttachJob {
    pub nic: AddedNic,
}

/// What the control plane asks a VM's agent: take out the NIC in hot-plug port `port`
/// (`nic` names it in messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NicDetachJob {
    pub nic: String,
    pub port: u32,
}

/// The agent's answer: the NIC is in the VM (or gone), `live` when that happened under a
/// running guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NicPlugged {
    pub nic: String,
    pub live: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nic_attaches_to_exactly_one_thing() {
        let net = NicAddRequest {
            network: Some("app".into()),
            ..NicAddRequest::default()
        };
        assert!(net.validate().is_ok());
        let e = NicAddRequest::default().validate().unwrap_err();
        assert!(e.message.contains("--network NET"), "{e}");
        let both = NicAddRequest {
            nat: true,
            ..net.clone()
        };
        assert!(both.validate().is_err());
        let ip_on_nat = NicAddRequest {
            nat: true,
            ip: Some("10.0.0.5".into()),
            ..NicAddRequest::default()
        };
        assert!(ip_on_nat.validate().unwrap_err().message.contains("--ip"));
        let bad_bridge = NicAddRequest {
            bridge: Some("br/0".into()),
            ..NicAddRequest::default()
        };
        assert!(bad_bridge.validate().is_err());
        let multicast = NicAddRequest {
            mac: Some("01:00:5e:00:00:01".into()),
            ..net
        };
        assert!(multicast.validate().is_err());
    }

    #[test]
    fn nic_names() {
        for ok in ["nic0", "nic1", "nic12"] {
            assert!(is_nic_name(ok), "{ok}");
        }
        for bad in ["nic", "nic01", "nicx", "disk1", "nic-1"] {
            assert!(!is_nic_name(bad), "{bad}");
        }
    }
}
