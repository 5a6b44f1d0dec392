//! `novacron events`: what happened in the cluster (the retained events), and with
//! `--follow` what happens next, resuming after a dropped connection without losing events.

use std::time::Duration;

use clap::Args;
use novacron_api_types::events::{Event, EventKind};
use novacron_client::{ClientError, EventsRequest, StreamItem};

use crate::output::Format;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    novacron events                                  # what happened recently\n  \
    novacron events --follow --kind vm,migration     # VM and migration events as they happen\n  \
    novacron events -f --vm web1 -o json             # everything about web1, one JSON object a line")]
pub struct EventsArgs {
    /// Keep following new events (reconnecting, without losing events, when the connection drops).
    #[arg(short, long)]
    pub follow: bool,
    /// Only these kinds, comma-separated: vm, operation, migration, node, backup, ha,
    /// network, audit.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<EventKind>,
    /// Only events about this VM: its state, its operations and its migrations.
    #[arg(long, conflicts_with = "node")]
    pub vm: Option<String>,
    /// Only events about this node (its state, and migrations to or from it).
    #[arg(long)]
    pub node: Option<String>,
    /// Start after this event id (as printed in the ID column) instead of with every retained event.
    #[arg(long)]
    pub after: Option<String>,
}

pub async fn run(args: EventsArgs, out: Format) -> anyhow::Result<()> {
    let client = crate::cli::client()?;
    let resource = match (&args.vm, &args.node) {
        (Some(vm), _) => Some(format!("vm/{vm}")),
        (None, Some(node)) => Some(format!("node/{node}")),
        (None, None) => None,
    };
    let mut req = EventsRequest {
        // Only the selected project's events (the global --project), if one is selected.
        project: crate::cli::selected_project(),
        kinds: args.kind,
        resource,
        after: Some(args.after.unwrap_or_else(|| "0".into())),
        follow: args.follow,
    };
    let mut header_printed = false;
    loop {
        let mut stream = match client.events(&req).await {
            Ok(s) => s,
            Err(ClientError::Unreachable { .. }) if args.follow && header_printed => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !header_printed && out == Format::Table {
            println!("{}", line("ID", "KIND", "ACTION", "RESOURCE", "MESSAGE"));
        }
        header_printed = true;
        loop {
            match stream.next().await {
                Ok(Some(StreamItem::Event(e))) => {
                    print_event(&e, out)?;
                    req.after = Some(e.id.clone());
                }
                Ok(Some(StreamItem::Gap(gap))) => {
                    eprintln!(
                        "warning: {} (complete after {})",
                        gap.message, gap.retained_after
                    );
                }
                Ok(None) if !args.follow => return Ok(()),
                Ok(None) => break,
                Err(e) if args.follow => {
                    tracing::debug!(error = %e, "events stream dropped; resuming");
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn line(id: &str, kind: &str, action: &str, resource: &str, message: &str) -> String {
    format!("{id:<12}  {kind:<9}  {action:<10}  {resource:<24}  {message}")
}

fn print_event(e: &Event, out: Format) -> anyhow::Result<()> {
    use std::io::Write;
    let text = match out {
        Format::Json => serde_json::to_string(e)?,
        Format::Table => line(
            &e.id,
            e.kind.as_str(),
            &e.action,
            &e.resource,
            &crate::terminal_safe::strip_terminal_controls(&e.message),
        ),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}
