//! `novacron vm disk ...`: change a VM's disks. `resize` grows `disk0` (live while the VM
//! runs; the guest sees the new size at once). Each change is an operation the CLI waits for.

use anyhow::Context;
use clap::Subcommand;
use novacron_api_types::disks::DiskResizeRequest;
use novacron_api_types::{format_size, parse_size};
use serde::Serialize;

use crate::cli::{WaitArgs, client};
use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum DiskCommand {
    /// Grow a VM's disk (running or stopped; a running guest sees the new size at once).
    #[command(after_help = "Example:\n  novacron vm disk resize web1 disk0 --size 40G")]
    Resize {
        /// The VM's name.
        name: String,
        /// The disk: disk0 (`disk` in `vm show`).
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

pub async fn run(cmd: DiskCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let DiskCommand::Resize {
        name,
        disk,
        size,
        wait,
    } = cmd;
    let size_bytes = parse_size(&size).context("--size")?;
    let op = c
        .vm_disk_resize(&name, &disk, &DiskResizeRequest { size_bytes })
        .await?
        .operation;
    let Some(done) = wait.apply(&c, op, out).await? else {
        return Ok(());
    };
    let vm = c.vm_get(&name).await?;
    let shown = Resized {
        vm: name,
        disk: novacron_api_types::disks::DISK0.into(),
        size_bytes: vm.disk_bytes,
        operation: done,
    };
    output::print_details(out, &shown, || {
        vec![
            ("vm", shown.vm.clone()),
            ("disk", shown.disk.clone()),
            (
                "size",
                shown
                    .size_bytes
                    .map(format_size)
                    .unwrap_or_else(|| "-".into()),
            ),
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
