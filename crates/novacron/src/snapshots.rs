//! `novacron vm snapshot ...`: take, list, revert and delete snapshots of a VM's disk (and
//! of its running state with `--memory`). Each change is an operation the CLI waits for.

use clap::Subcommand;
use novacron_api_types::{SnapshotCreateRequest, VmSnapshot, format_size};

use crate::cli::{WaitArgs, client};
use crate::output::{self, Format, ago};

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Take a snapshot of the VM's disk (with --memory, of its running state too).
    #[command(after_help = "Example:\n  novacron vm snapshot create web1 before-upgrade --memory")]
    Create {
        /// The VM's name.
        name: String,
        /// The snapshot's name (default snap-<unix time>).
        snapshot: Option<String>,
        /// Save memory and device state too, so a revert brings the running guest back to
        /// this moment (the VM must be running; it pauses while memory is written).
        #[arg(long)]
        memory: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List the VM's snapshots.
    #[command(after_help = "Example:\n  novacron vm snapshot list web1")]
    List {
        /// The VM's name.
        name: String,
    },
    /// Revert the VM to a snapshot (a disk-only snapshot needs the VM stopped; a running VM
    /// needs --force).
    #[command(
        after_help = "Examples:\n  novacron vm snapshot revert web1 before-upgrade\n  novacron vm snapshot revert web1 before-upgrade --force   # web1 runs: its present is lost"
    )]
    Revert {
        /// The VM's name.
        name: String,
        /// The snapshot's name.
        snapshot: String,
        /// Revert a running VM to a memory snapshot: everything the guest did since is lost.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a snapshot (the VM keeps its current state).
    #[command(after_help = "Example:\n  novacron vm snapshot delete web1 before-upgrade")]
    Delete {
        /// The VM's name.
        name: String,
        /// The snapshot's name.
        snapshot: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

const HEADERS: [&str; 4] = ["NAME", "MEMORY", "STATE-SIZE", "TAKEN"];

fn rows(snaps: &[VmSnapshot]) -> Vec<Vec<String>> {
    snaps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.memory { "yes" } else { "no" }.into(),
                format_size(s.vm_state_bytes),
                ago(s.created_at),
            ]
        })
        .collect()
}

pub async fn run(cmd: SnapshotCommand, out: Format) -> anyhow::Result<()> {
    let c = client()?;
    let (name, op, wait) = match cmd {
        SnapshotCommand::List { name } => {
            let snaps = c.vm_snapshot_list(&name).await?;
            return output::print(out, &snaps, &HEADERS, || rows(&snaps));
        }
        SnapshotCommand::Create {
            name,
            snapshot,
            memory,
            wait,
        } => {
            let req = SnapshotCreateRequest {
                name: snapshot,
                memory,
            };
            let op = c.vm_snapshot_create(&name, &req).await?.operation;
            (name, op, wait)
        }
        SnapshotCommand::Revert {
            name,
            snapshot,
            force,
            wait,
        } => {
            let op = c
                .vm_snapshot_revert(&name, &snapshot, force)
                .await?
                .operation;
            (name, op, wait)
        }
        SnapshotCommand::Delete {
            name,
            snapshot,
            wait,
        } => {
            let op = c.vm_snapshot_delete(&name, &snapshot).await?.operation;
            (name, op, wait)
        }
    };
    let Some(done) = wait.apply(&c, op, out).await? else {
        return Ok(());
    };
    if out == Format::Table {
        println!("{} (operation {})", done.message, done.id);
    }
    let snaps = c.vm_snapshot_list(&name).await?;
    output::print(out, &snaps, &HEADERS, || rows(&snaps))
}
