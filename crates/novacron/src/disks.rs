//! `novacron vm disk ...`: change a VM's disks. `add` gives it a blank disk and `detach`
//! removes one again (both plugged into or out of a running guest); `resize` grows a disk
//! (live while the VM runs; the guest sees the new size at once). Each change is an
//! operation the CLI waits for.

use anyhow::Context;
use clap::Subcommand;
use novacron_api_types::disks::{DISK0, DataDisk, DiskAddRequest, DiskResizeRequest};
use novacron_api_types::{format_size, parse_size};
use serde::Serialize;

use crate::cli::{WaitArgs, client};
use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum DiskCommand {
    /// Add a disk to a VM (disk1, disk2, ...), blank or a copy of a disk image: plugged into
    /// a running guest at once, or there from a stopped VM's next start.
    #[command(
        after_help = "Examples:\n  novacron vm disk add web1 --size 20G\n  novacron vm disk add web1 --image data-seed [--size 40G]"
    )]
    Add {
        /// The VM's name.
        name: String,
        /// The new disk's size, e.g. 20G (with --image: at least the image's; default the image's).
        #[arg(long, required_unless_present = "image")]
        size: Option<String>,
        /// A disk image of the project to copy onto the new disk (a standalone copy: the
        /// image can be deleted afterwards).
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// The disk's bus: virtio (virtio-blk, the only one plugged into a running VM).
        #[arg(long, value_name = "BUS")]
        bus: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Detach a disk added with `vm disk add` and delete it with its data (from a running
    /// VM only with --force: the guest must release it; unmount it first).
    #[command(after_help = "Example:\n  novacron vm disk detach web1 disk1 --force")]
    Detach {
        /// The VM's name.
        name: String,
        /// The disk: disk1, disk2, ... (see `vm show`).
        disk: String,
        /// Detach from a running VM: unplugged from the guest, and its data deleted.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Grow a VM's disk (running or stopped; a running guest sees the new size at once).
    #[command(after_help = "Example:\n  novacron vm disk resize web1 disk0 --size 40G")]
    Resize {
        /// The VM's name.
        name: String,
        /// The disk: disk0 (`disk` in `vm show`), or one added with `vm disk add`.
        disk: String,
        /// The new size, e.g. 40G: larger than the disk is now (disks only grow).
        #[arg(long)]
        size: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// What `vm disk resize` prints (`-o json`).
#[derive(Serialize)]
struct Resized {
    vm: String,
    disk: String,
    /// The disk's size as the control plane records it now.
    size_bytes: Option<u64>,
    operation: novacron_api_types::Operation,
}

/// What `vm disk add` and `vm disk detach` print (`-o json`).
#[derive(Serialize)]
struct Plugged {
    vm: String,
    /// The disk added or detached (`disk1`, ...).
    disk: String,
    /// The added disk's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
    /// The VM's added disks now.
    data_disks: Vec<DataDisk>,
    operation: novacron_api_types::Operation,
}

/// The VM's disk `disk`'s size as the control plane records it.
fn recorded_size(vm: &novacron_api_types::Vm, disk: &str) -> Option<u64> {
    if disk == DISK0 || disk == "disk" {
        return vm.disk_bytes;
    }
    vm.data_disks
        .iter()
        .find(|d| d.name == disk)
        .map(|d| d.size_bytes)
}

fn print_plugged(out: Format, shown: &Plugged) -> anyhow::Result<()> {
    output::print_details(out, shown, || {
        vec![
            ("vm", shown.vm.clone()),
            ("disk", shown.disk.clone()),
            ("size", size_or_dash(shown.size_bytes)),
            ("added disks", describe_added(&shown.data_disks)),
            ("operation", shown.operation.id.clone()),
            ("message", shown.operation.message.clone()),
        ]
    })
}

/// A size as `vm show` prints it, `-` for none.
fn size_or_dash(bytes: Option<u64>) -> String {
    bytes.map(format_size).unwrap_or_else(|| "-".into())
}

/// `disk1 20G, disk2 1G`, or `-`.
pub fn describe_added(disks: &[DataDisk]) -> String {
    if disks.is_empty() {
        return "-".into();
    }
    disks
        .iter()
        .map(|d| match &d.image {
            Some(i) => format!("{} {} (from image {i})", d.name, format_size(d.size_bytes)),
            None => format!("{} {}", d.name, format_size(d.size_bytes)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(cmd: DiskCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let (name, disk, size, wait) = match cmd {
        DiskCommand::Add {
            name,
            size,
            image,
            bus,
            wait,
        } => {
            let size_bytes = match &size {
                Some(s) => Some(parse_size(s).context("--size")?),
                None => None,
            };
            let before = c.vm_get(&name).await?.data_disks;
            let req = DiskAddRequest {
                size_bytes,
                image,
                bus,
            };
            let op = c.vm_disk_add(&name, &req).await?.operation;
            let Some(done) = wait.apply(&c, op, out).await? else {
                return Ok(());
            };
            let vm = c.vm_get(&name).await?;
            let added = vm
                .data_disks
                .iter()
                .find(|d| !before.iter().any(|b| b.name == d.name))
                .map(|d| d.name.clone())
                .unwrap_or_default();
            let shown = Plugged {
                vm: name,
                size_bytes: recorded_size(&vm, &added),
                disk: added,
                data_disks: vm.data_disks,
                operation: done,
            };
            return print_plugged(out, &shown);
        }
        DiskCommand::Detach {
            name,
            disk,
            force,
            wait,
        } => {
            let op = c.vm_disk_detach(&name, &disk, force).await?.operation;
            let Some(done) = wait.apply(&c, op, out).await? else {
                return Ok(());
            };
            let vm = c.vm_get(&name).await?;
            let shown = Plugged {
                vm: name,
                disk,
                size_bytes: None,
                data_disks: vm.data_disks,
                operation: done,
            };
            return print_plugged(out, &shown);
        }
        DiskCommand::Resize {
            name,
            disk,
            size,
            wait,
        } => (name, disk, size, wait),
    };
    let size_bytes = parse_size(&size).context("--size")?;
    let op = c
        .vm_disk_resize(&name, &disk, &DiskResizeRequest { size_bytes })
        .await?
        .operation;
    let Some(done) = wait.apply(&c, op, out).await? else {
        return Ok(());
    };
    let vm = c.vm_get(&name).await?;
    let disk = if disk == "disk" { DISK0.into() } else { disk };
    let shown = Resized {
        vm: name,
        size_bytes: recorded_size(&vm, &disk),
        disk,
        operation: done,
    };
    output::print_details(out, &shown, || {
        vec![
            ("vm", shown.vm.clone()),
            ("disk", shown.disk.clone()),
            ("size", size_or_dash(shown.size_bytes)),
            ("operation", shown.operation.id.clone()),
            ("message", shown.operation.message.clone()),
        ]
    })
}

/// `novacron vm template`.
#[derive(clap::Args, Debug)]
pub struct TemplateArgs {
    /// The VM's name (it must be stopped; it is kept as it was).
    pub name: String,
    /// The new image's name (default: the VM's name).
    #[arg(long = "as", value_name = "IMAGE")]
    pub image: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// What `vm template` prints (`-o json`).
#[derive(Serialize)]
struct Templated {
    image: novacron_api_types::Image,
    vm: String,
    /// The VM stays as it was (NovaCron does not turn it into the template, unlike Proxmox).
    vm_kept: bool,
    operation: novacron_api_types::Operation,
}

pub async fn template(a: TemplateArgs, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let req = novacron_api_types::disks::TemplateRequest {
        image: a.image.clone(),
    };
    let op = c.vm_template(&a.name, &req).await?.operation;
    let Some(done) = a.wait.apply(&c, op, out).await? else {
        return Ok(());
    };
    let name = a.image.unwrap_or_else(|| a.name.clone());
    let shown = Templated {
        image: c.image_get(&name).await?,
        vm: a.name,
        vm_kept: true,
        operation: done,
    };
    output::print_details(out, &shown, || {
        vec![
            ("image", shown.image.name.clone()),
            (
                "disk",
                shown
                    .image
                    .virtual_size_bytes
                    .map(format_size)
                    .unwrap_or_else(|| "-".into()),
            ),
            ("stored", format_size(shown.image.size_bytes)),
            ("vm", format!("{} (kept as it was)", shown.vm)),
            ("operation", shown.operation.id.clone()),
            (
                "next",
                format!("novacron vm create NAME --image {}", shown.image.name),
            ),
        ]
    })
}

/// `novacron vm clone`.
#[derive(clap::Args, Debug)]
pub struct CloneArgs {
    /// The VM to clone (it must be stopped).
    pub name: String,
    /// The new VM's name.
    pub clone: String,
    /// Share the source's disk, frozen, as the backing file of both instead of copying it
    /// (instant; both then stay where the base is: no live migration off a local disk).
    #[arg(long)]
    pub linked: bool,
    /// The node for the clone: the source's node (where its disk is).
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn clone(a: CloneArgs, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let req = novacron_api_types::disks::CloneRequest {
        name: a.clone.clone(),
        linked: a.linked,
        node: a.node.clone(),
    };
    let op = c.vm_clone(&a.name, &req).await?.operation;
    let Some(done) = a.wait.apply(&c, op, out).await? else {
        return Ok(());
    };
    let vm = c.vm_get(&a.clone).await?;
    output::print_details(out, &vm, || {
        vec![
            ("name", vm.name.clone()),
            ("cloned from", a.name.clone()),
            ("state", vm.state.to_string()),
            ("node", vm.node.clone().unwrap_or_default()),
            ("uuid", vm.uuid.clone()),
            (
                "disk",
                vm.disk_bytes
                    .map(|b| {
                        let how = if a.linked {
                            "an overlay over the frozen disk"
                        } else {
                            "a copy of the disk"
                        };
                        format!("{} ({how} of {})", format_size(b), a.name)
                    })
                    .unwrap_or_else(|| "-".into()),
            ),
            ("operation", done.id.clone()),
            ("next", format!("novacron vm start {}", vm.name)),
        ]
    })
}
