//! `novacron network create | list | show | delete`: overlay networks (one VXLAN VNI and
//! one IPv4 subnet spanning every node).

use clap::{Subcommand, ValueEnum};
use novacron_api_types::DEFAULT_PROJECT;
use novacron_api_types::overlay::{NetworkCreateRequest, OverlayNetwork};

use crate::output::{self, Format};

/// `--dhcp on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create an overlay network: a subnet and a VNI unique in the cluster.
    Create {
        /// The network's name, unique in its project.
        name: String,
        /// IPv4 subnet in CIDR notation, e.g. 10.10.0.0/24.
        #[arg(long)]
        subnet: String,
        /// Gateway address (default: the subnet's first host address).
        #[arg(long)]
        gateway: Option<String>,
        /// Outbound access through the node each VM runs on.
        #[arg(long)]
        nat: bool,
        /// Hand out addresses by DHCP.
        #[arg(long, value_enum, default_value = "on")]
        dhcp: OnOff,
        /// DNS names VM.NETWORK for the network's VMs.
        #[arg(long)]
        dns: bool,
        /// MTU inside the network (the underlay carries 50 bytes more per packet, 110 between
        /// sites). Default: 1450, or 1390 while the cluster has nodes in more than one site.
        #[arg(long)]
        mtu: Option<u32>,
    },
    /// Overlay networks (of the selected --project, or of every project you may see).
    List,
    /// One overlay network.
    Show {
        /// The network's name.
        name: String,
    },
    /// Delete an overlay network (refused while a VM uses it).
    Delete {
        /// The network's name.
        name: String,
    },
}

const HEADERS: [&str; 8] = [
    "NAME", "PROJECT", "VNI", "SUBNET", "GATEWAY", "MTU", "DHCP", "OPTIONS",
];

fn options(n: &OverlayNetwork) -> String {
    let mut o: Vec<&str> = vec![];
    if n.nat {
        o.push("nat");
    }
    if n.dns {
        o.push("dns");
    }
    if o.is_empty() {
        "-".into()
    } else {
        o.join(",")
    }
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.into()
}

fn rows(networks: &[OverlayNetwork]) -> Vec<Vec<String>> {
    networks
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.project.clone(),
                n.vni.to_string(),
                n.subnet.clone(),
                n.gateway.clone(),
                n.mtu.to_string(),
                on_off(n.dhcp),
                options(n),
            ]
        })
        .collect()
}

fn details(n: &OverlayNetwork) -> Vec<(&'static str, String)> {
    vec![
        ("name", n.name.clone()),
        ("project", n.project.clone()),
        ("vni", n.vni.to_string()),
        ("subnet", n.subnet.clone()),
        ("gateway", n.gateway.clone()),
        ("mtu", n.mtu.to_string()),
        ("nat", on_off(n.nat)),
        ("dhcp", on_off(n.dhcp)),
        ("dns", on_off(n.dns)),
        ("created", output::ago(n.created_at)),
    ]
}

pub async fn run(cmd: NetworkCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            nat,
            dhcp,
            dns,
            mtu,
        } => {
            let n = c
                .network_create(&NetworkCreateRequest {
                    name,
                    project: crate::cli::selected_project(),
                    subnet,
                    gateway,
                    nat,
                    dhcp: dhcp == OnOff::On,
                    dns,
                    mtu,
                })
                .await?;
            output::print_details(out, &n, || details(&n))
        }
        NetworkCommand::List => {
            // The selected project's networks, or every project's you may see.
            let project = crate::cli::selected_project();
            let networks = c.network_list(project.as_deref()).await?;
            output::print(out, &networks, &HEADERS, || rows(&networks))
        }
        NetworkCommand::Show { name } => {
            let project = crate::cli::selected_project().unwrap_or_else(|| DEFAULT_PROJECT.into());
            let n = c.network_show(&name, &project).await?;
            output::print_details(out, &n, || details(&n))
        }
        NetworkCommand::Delete { name } => {
            let project = crate::cli::selected_project().unwrap_or_else(|| DEFAULT_PROJECT.into());
            let n = c.network_delete(&name, &project).await?;
            output::print_details(out, &n, || {
                vec![("deleted", n.name.clone()), ("vni", n.vni.to_string())]
            })
        }
    }
}
