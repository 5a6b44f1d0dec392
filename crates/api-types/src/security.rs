//! Security groups: named sets of stateful firewall rules for the NICs a VM has on overlay
//! networks (docs/security-groups.md). A NIC of a VM with no group is not filtered; a NIC
//! of a VM with groups takes in only what one of their `in` rules allows (replies to its
//! own connections always come back), and sends anything unless one of its groups has an
//! `out` rule, in which case it sends only what those allow.
//!
//! The checks that need only the request live here, so the CLI and the control plane
//! refuse a bad rule with the same message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Invalid, UnixSeconds, validate_name};

/// Most rules one group holds.
pub const MAX_RULES: usize = 256;
/// Most groups one VM is in.
pub const MAX_GROUPS_PER_VM: usize = 16;

/// Which way a rule looks: traffic into the NIC, or out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// The IPv4 protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Any,
    Tcp,
    Udp,
    Icmp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Any => "any",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        })
    }
}

/// What a rule matches on the wire: a protocol and, for TCP and UDP, a destination port
/// range (`tcp/80`, `udp/5000-5100`, `tcp` for every port, `icmp`, `any`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Traffic {
    pub protocol: Protocol,
    /// Inclusive destination ports; None is every port (and the only choice without ports).
    pub ports: Option<(u16, u16)>,
}

impl FromStr for Traffic {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| {
            Invalid(format!(
                "invalid traffic {s:?}: {why}; expected tcp/80, udp/5000-5100, tcp, udp, icmp or any"
            ))
        };
        let (proto, ports) = match s.trim().split_once('/') {
            Some((p, ports)) => (p, Some(ports)),
            None => (s.trim(), None),
        };
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "any" | "all" => Protocol::Any,
            _ => return Err(bad("unknown protocol")),
        };
        let Some(ports) = ports else {
            return Ok(Traffic {
                protocol,
                ports: None,
            });
        };
        if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
            return Err(bad("only tcp and udp take ports"));
        }
        let port = |p: &str| -> Result<u16, Invalid> {
            match p.trim().parse::<u16>() {
                Ok(n) if n > 0 && p.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(bad("a port is a number from 1 to 65535")),
            }
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(bad("the first port of a range must not exceed the last"));
        }
        Ok(Traffic {
            protocol,
            ports: Some((lo, hi)),
        })
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ports {
            None => write!(f, "{}", self.protocol),
            Some((a, b)) if a == b => write!(f, "{}/{a}", self.protocol),
            Some((a, b)) => write!(f, "{}/{a}-{b}", self.protocol),
        }
    }
}

/// One rule of a group, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityRule {
    /// Unique in its group and never reused (`security-group rule delete GROUP ID`).
    pub id: u32,
    pub direction: Direction,
    pub protocol: Protocol,
    /// Inclusive destination port range (TCP and UDP); absent for every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_min: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u16>,
    /// The other end as an IPv4 CIDR (the source of `in` traffic, the destination of
    /// `out` traffic)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// ...or as the NICs of the VMs in this group of the same project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl SecurityRule {
    pub fn traffic(&self) -> Traffic {
        Traffic {
            protocol: self.protocol,
            ports: self.port_min.zip(self.port_max),
        }
    }

    /// `in tcp/80 from 10.0.0.0/8`, `out any to group db`.
    pub fn describe(&self) -> String {
        let (word, peer) = match self.direction {
            Direction::In => ("from", self.peer()),
            Direction::Out => ("to", self.peer()),
        };
        format!("{} {} {word} {peer}", self.direction, self.traffic())
    }

    fn peer(&self) -> String {
        match (&self.group, &self.cidr) {
            (Some(g), _) => format!("group {g}"),
            (None, Some(c)) => c.clone(),
            (None, None) => "0.0.0.0/0".into(),
        }
    }
}

/// A security group: what `security-group show` prints and what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityGroup {
    pub name: String,
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub rules: Vec<SecurityRule>,
    /// The id the next rule gets.
    #[serde(default = "first_rule_id")]
    pub next_rule_id: u32,
    pub created_at: UnixSeconds,
}

fn first_rule_id() -> u32 {
    1
}

/// Body of `POST /api/v1/security-groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupCreateRequest {
    pub name: String,
    /// Defaults to the request's project.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl SecurityGroupCreateRequest {
    pub fn check(&self) -> Result<(), Invalid> {
        validate_name("security group", &self.name)?;
        if let Some(p) = &self.project {
            validate_name("project", p)?;
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 1024) {
            return Err(Invalid(
                "the description is longer than 1024 bytes: shorten it".into(),
            ));
        }
        Ok(())
    }
}

/// Body of `POST /api/v1/security-groups/{name}/rules`: `--in tcp/80 --from 10.0.0.0/8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityRuleRequest {
    pub direction: Direction,
    /// `tcp/80`, `udp/5000-5100`, `tcp`, `udp`, `icmp` or `any`.
    pub traffic: String,
    /// The other end as an IPv4 CIDR (default `0.0.0.0/0` when no group is named).
    #[serde(default)]
    pub cidr: Option<String>,
    /// The other end as the VMs of this group (same project).
    #[serde(default)]
    pub group: Option<String>,
}

impl SecurityRuleRequest {
    /// The rule it asks for, numbered `id`; every check that needs only the request.
    pub fn check(&self, id: u32) -> Result<SecurityRule, Invalid> {
        let traffic: Traffic = self.traffic.parse()?;
        let (cidr, group) = match (&self.cidr, &self.group) {
            (Some(_), Some(_)) => {
                return Err(Invalid(
                    "a rule names its other end by CIDR or by group, not both".into(),
                ));
            }
            (None, Some(g)) => {
                validate_name("security group", g)?;
                (None, Some(g.clone()))
            }
            (Some(c), None) => (Some(parse_any_cidr(c)?), None),
            (None, None) => (Some("0.0.0.0/0".to_string()), None),
        };
        Ok(SecurityRule {
            id,
            direction: self.direction,
            protocol: traffic.protocol,
            port_min: traffic.ports.map(|p| p.0),
            port_max: traffic.ports.map(|p| p.1),
            cidr,
            group,
        })
    }
}

/// An IPv4 CIDR of any length (`0.0.0.0/0`, `10.0.0.0/8`, `10.0.0.7/32`) or a single
/// address (taken as /32), host bits zero. Returned in canonical form.
pub fn parse_any_cidr(s: &str) -> Result<String, Invalid> {
    let bad = || {
        Invalid(format!(
            "invalid CIDR {s:?}: expected an IPv4 network like 10.0.0.0/8 or an address like 10.0.0.7"
        ))
    };
    let (addr, len) = match s.trim().split_once('/') {
        Some((a, l)) => (a, l),
        None => (s.trim(), "32"),
    };
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let network = std::net::Ipv4Addr::from(u32::from(addr) & mask);
    if network != addr {
        return Err(Invalid(format!(
            "CIDR {s} has host bits set: did you mean {network}/{len}?"
        )));
    }
    Ok(format!("{network}/{len}"))
}

/// Answer of `POST /api/v1/security-groups/{name}/rules`: the group and the rule added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityRuleAdded {
    pub group: SecurityGroup,
    pub rule: SecurityRule,
}

/// Body of `PUT /api/v1/vms/{name}/security-groups`: the VM's whole list (empty: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSecurityGroupsRequest {
    pub security_groups: Vec<String>,
}

/// Checks a VM's list of groups: valid names, no repeats, at most [`MAX_GROUPS_PER_VM`].
pub fn check_group_list(groups: &[String]) -> Result<(), Invalid> {
    if groups.len() > MAX_GROUPS_PER_VM {
        return Err(Invalid(format!(
            "a VM is in at most {MAX_GROUPS_PER_VM} security groups ({} asked)",
            groups.len()
        )));
    }
    for (i, g) in groups.iter().enumerate() {
        validate_name("security group", g)?;
        if groups[..i].contains(g) {
            return Err(Invalid(format!("security group {g} is named twice")));
        }
    }
    Ok(())
}

/// The rules of one group as a node's firewall needs them, with the addresses of its
/// members when another rule names it (`--from-group`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeSecurityGroup {
    pub project: String,
    pub name: String,
    pub rules: Vec<SecurityRule>,
    /// IPv4 addresses of the overlay NICs of the VMs in the group, anywhere in the cluster.
    pub members: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        direction: Direction,
        traffic: &str,
        cidr: Option<&str>,
        group: Option<&str>,
    ) -> Result<SecurityRule, Invalid> {
        SecurityRuleRequest {
            direction,
            traffic: traffic.into(),
            cidr: cidr.map(Into::into),
            group: group.map(Into::into),
        }
        .check(7)
    }

    #[test]
    fn traffic_parses_strictly_and_prints_back() {
        for (text, printed) in [
            ("tcp/80", "tcp/80"),
            ("TCP/80-80", "tcp/80"),
            ("udp/5000-5100", "udp/5000-5100"),
            ("tcp", "tcp"),
            ("icmp", "icmp"),
            ("any", "any"),
        ] {
            let t: Traffic = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.to_string(), printed);
        }
        for bad in [
            "",
            "tcp/",
            "tcp/0",
            "tcp/65536",
            "tcp/90-80",
            "icmp/8",
            "any/1",
            "sctp/1",
            "tcp/+80",
            "tcp/80-",
            "tcp/a",
        ] {
            assert!(bad.parse::<Traffic>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_names_its_other_end_once_and_defaults_to_everywhere() {
        let r = rule(Direction::In, "tcp/80", None, None).unwrap();
        assert_eq!(r.cidr.as_deref(), Some("0.0.0.0/0"));
        assert_eq!(r.describe(), "in tcp/80 from 0.0.0.0/0");
        let r = rule(Direction::In, "tcp/80", None, Some("lb")).unwrap();
        assert_eq!((r.cidr, r.group.as_deref()), (None, Some("lb")));
        let r = rule(Direction::Out, "udp/53", Some("10.0.0.7"), None).unwrap();
        assert_eq!(r.cidr.as_deref(), Some("10.0.0.7/32"));
        assert_eq!(r.describe(), "out udp/53 to 10.0.0.7/32");
        assert!(rule(Direction::In, "tcp/80", Some("10.0.0.0/8"), Some("lb")).is_err());
        assert!(rule(Direction::In, "tcp/80", Some("10.0.0.1/8"), None).is_err());
        assert!(rule(Direction::In, "tcp/80", None, Some("Bad")).is_err());
        assert_eq!(parse_any_cidr("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(parse_any_cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/0"] {
            assert!(parse_any_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_lists_are_bounded_and_unique() {
        assert!(check_group_list(&[]).is_ok());
        assert!(check_group_list(&["web".into(), "ssh".into()]).is_ok());
        assert!(check_group_list(&["web".into(), "web".into()]).is_err());
        let many: Vec<String> = (0..=MAX_GROUPS_PER_VM).map(|i| format!("g{i}")).collect();
        assert!(check_group_list(&many).is_err());
    }
}
