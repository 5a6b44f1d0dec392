//! `novacron vm nic ...`: give a VM another NIC after create, or take an added one away
//! (plugged into or out of a running guest). Each change is an operation the CLI waits for.

use clap::Subcommand;
use novacron_api_types::nics::{AddedNic, NicAddRequest};
use serde::Serialize;

use crate::cli::{WaitArgs, client};
use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum NicCommand {
    /// Add a NIC to a VM (nic1, nic2, ... after those it was created with), on an overlay
    /// network, a Linux bridge of its node, or user-mode NAT: plugged into a running guest
    /// at once, or there from a stopped VM's next start. It takes one of the VM's four
    /// hot-plug ports, which added disks use too.
    #[command(
        after_help = "Examples:\n  novacron vm nic add web1 --network app [--ip 10.10.0.7]\n  novacron vm nic add web1 --bridge br0\n  novacron vm nic add web1 --nat"
    )]
    Add {
        /// The VM's name.
        name: String,
        /// An overlay network of the VM's project (`novacron network list`).
        #[arg(long, value_name = "NET", conflicts_with_all = ["bridge", "nat"])]
        network: Option<String>,
        /// An existing Linux bridge on the VM's node.
        #[arg(long, value_name = "BRIDGE", conflicts_with_all = ["network", "nat", "ip"])]
        bridge: Option<String>,
        /// User-mode NAT on the VM's node (outbound only).
        #[arg(long, conflicts_with_all = ["network", "bridge", "ip"])]
        nat: bool,
        /// A fixed address in the network's subnet (with --network).
        #[arg(long, value_name = "IP", requires = "network")]
        ip: Option<String>,
        /// A fixed MAC (otherwise a generated one).
        #[arg(long, value_name = "MAC")]
        mac: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove a NIC added with `vm nic add` (from a running VM only with --force: the guest
    /// loses that network). An overlay NIC's address is freed.
    #[command(after_help = "Example:\n  novacron vm nic remove web1 nic1 --force")]
    Remove {
        /// The VM's name.
        name: String,
        /// The NIC: nic1, nic2, ... or its MAC (see `vm show`).
        nic: String,
        /// Remove from a running VM: unplugged from the guest.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// What `vm nic add` and `vm nic remove` print (`-o json`).
#[derive(Serialize)]
struct Changed {
    vm: String,
    /// The NIC added or removed (`nic1`, ...).
    nic: String,
    /// The added NIC as recorded (add only).
    #[serde(skip_serializing_if = "Option::is_none")]
    added: Option<AddedNic>,
    /// The VM's added NICs now.
    added_nics: Vec<AddedNic>,
    operation: novacron_api_types::Operation,
}

pub async fn run(cmd: NicCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let shown = match cmd {
        NicCommand::Add {
            name,
            network,
            bridge,
            nat,
            ip,
            mac,
            wait,
        } => {
            let before = c.vm_get(&name).await?.added_nics;
            let req = NicAddRequest {
                network,
                bridge,
                nat,
                ip,
                mac,
            };
            let op = c.vm_nic_add(&name, &req).await?.operation;
            let Some(done) = wait.apply(&c, op, out).await? else {
                return Ok(());
            };
            let vm = c.vm_get(&name).await?;
            let added = vm
                .added_nics
                .iter()
                .find(|n| !before.iter().any(|b| b.name == n.name))
                .cloned();
            Changed {
                vm: name,
                nic: added.as_ref().map(|n| n.name.clone()).unwrap_or_default(),
                added,
                added_nics: vm.added_nics,
                operation: done,
            }
        }
        NicCommand::Remove {
            name,
            nic,
            force,
            wait,
        } => {
            let op = c.vm_nic_remove(&name, &nic, force).await?.operation;
            let Some(done) = wait.apply(&c, op, out).await? else {
                return Ok(());
            };
            let vm = c.vm_get(&name).await?;
            Changed {
                vm: name,
                nic,
                added: None,
                added_nics: vm.added_nics,
                operation: done,
            }
        }
    };
    output::print_details(out, &shown, || {
        let mut rows = vec![("vm", shown.vm.clone()), ("nic", shown.nic.clone())];
        if let Some(n) = &shown.added {
            rows.push(("attached to", n.describe()));
        }
        rows.push((
            "added nics",
            if shown.added_nics.is_empty() {
                "-".into()
            } else {
                shown
                    .added_nics
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
        rows.push(("operation", shown.operation.id.clone()));
        rows.push(("message", shown.operation.message.clone()));
        rows
    })
}
