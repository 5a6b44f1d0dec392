//! What a running guest says about itself through its qemu-guest-agent: its network
//! interfaces and addresses, which `vm show` lists. One task per running QEMU asks every
//! 5 s while the guest boots (the first two minutes), every 30 s after, and hands the
//! worker only what changed, so the control plane hears of a new address without a status
//! report every poll. A guest without an agent simply never answers (nothing is logged).

use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::GuestInterface;
use novacron_qemu::RunningVm;
use tokio::sync::mpsc;

/// How often a booting guest is asked, for how long, then how often after.
const BOOTING_EVERY: Duration = Duration::from_secs(5);
const BOOTING_FOR: Duration = Duration::from_secs(120);
const SETTLED_EVERY: Duration = Duration::from_secs(30);

/// Starts asking `vm`'s guest; the answers that differ from the last arrive on the receiver.
/// The task ends when QEMU exits or the receiver is dropped.
pub fn watch(vm: Arc<RunningVm>) -> mpsc::Receiver<Vec<GuestInterface>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(poll(vm, tx));
    rx
}

async fn poll(vm: Arc<RunningVm>, tx: mpsc::Sender<Vec<GuestInterface>>) {
    let started = tokio::time::Instant::now();
    let mut last: Option<Vec<GuestInterface>> = None;
    loop {
        let pause = if started.elapsed() < BOOTING_FOR {
            BOOTING_EVERY
        } else {
            SETTLED_EVERY
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = tx.closed() => return,
        }
        if vm.has_exited() {
            return;
        }
        let seen = match vm.guest_agent().await {
            Ok(mut agent) => agent.network_interfaces().await.ok(),
            Err(_) => None,
        };
        // No agent (yet), or it failed this once: what was reported stands.
        let Some(seen) = seen else { continue };
        let seen: Vec<GuestInterface> = seen
            .into_iter()
            .map(|i| GuestInterface {
                name: i.name,
                mac: i.mac,
                ips: i.ips,
            })
            .collect();
        if last.as_ref() != Some(&seen) {
            if tx.send(seen.clone()).await.is_err() {
                return;
            }
            last = Some(seen);
        }
    }
}

/// The next change from a watch, or never when there is none.
pub async fn next(rx: &mut Option<mpsc::Receiver<Vec<GuestInterface>>>) -> Vec<GuestInterface> {
    match rx {
        Some(r) => match r.recv().await {
            Some(seen) => seen,
            None => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}
