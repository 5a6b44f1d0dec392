//! What the taps of a node's VM NICs on overlay networks may do, kept by [`PortApplier`]
//! from a [`NodePorts`]:
//! - **Source pinning:** a tap whose NIC is on an overlay network sends only frames with
//!   its NIC's MAC as source (`iifname TAP ether saddr != MAC drop`, before anything else
//!   and before the bridge learns the address): a guest cannot pass itself off as another
//!   VM, poison the bridge's forwarding table, or slip past the firewall's and the
//!   policer's per-MAC rules with a made-up MAC.
//! - **Bandwidth limits** (`vm create --bandwidth`): a [`ShapedNic`] (the guest NIC's MAC
//!   and a rate in bits per second, the same both ways) becomes a shaper on the NIC's tap
//!   for the guest's download and a policer in nftables for its upload.
//!
//! A VM tap (`nctapN` on `ncbr<vni>`) names its NIC in its alias, [`tap_alias`]
//! (`nc-guest=02:aa:bb:cc:dd:ee`): the tap's own name changes whenever the VM restarts or
//! migrates here, the MAC does not.
//!
//! Fixed choices, and why:
//! - This kernel has the HTB and TBF qdiscs but no tc classifiers or actions (no `u32`,
//!   `matchall`, `police`, `mirred`), so the tap's ingress cannot be policed by tc nor
//!   redirected to an IFB device to be shaped.
//! - Download (host to guest, the tap's egress): a `tbf` root qdisc on the tap, a true
//!   shaper that queues (at most [`TBF_LATENCY`] of traffic) instead of dropping. It has
//!   the handle `4e43:` ("NC"): a root tbf with that handle on an `nctap*` device is
//!   NovaCron's, and only that one is ever removed (also one an earlier agent left behind);
//!   any other root qdisc on a tap whose NIC has no limit is left alone.
//! - Upload (guest to host, the tap's ingress): one rule per NIC in the table
//!   `bridge novacron_ports`, chain `prerouting` (priority -200, before any filtering):
//!   `iifname "nctap*" ether saddr MAC limit rate over N bytes/second burst B bytes drop`.
//!   Keyed by MAC, it needs no tap name, so it holds before the tap exists and across
//!   restarts. A policer drops what exceeds the rate; the guest's TCP backs off.
//! - The policer's bucket is not what its burst says: in bytes mode the kernel's bucket
//!   (`nft_limit_init`) holds one second at the rate plus the burst. A guest that was idle
//!   sends a second's worth at full speed first, so a 4 s transfer averages about 1.25
//!   times the rate; the long-run rate is exact. Rewriting the table (a limit changed or a
//!   NIC came or went) refills every NIC's bucket.
//! - The two directions count slightly different bytes: tbf the whole frame, the policer
//!   the frame without its Ethernet header (about 1% less for full-size frames).
//! - Rates are [`MIN_RATE_BPS`]..=[`MAX_RATE_BPS`]: below, the smallest tbf burst is over
//!   two seconds of traffic and the limit stops shaping; above, nft's byte limit overflows
//!   (`nft_limit_init` multiplies a nanosecond by the rate plus the burst, in 64 bits).
//!
//! - Both rule kinds live in one table, `bridge novacron_ports`, rewritten in one
//!   transaction when what it should hold changes (a tap came or went, a limit changed);
//!   the pins name taps, which change with every VM start, the policers MACs.
//!
//! [`render`], [`tbf_burst_bytes`], the plan of tc changes and the validation are pure and
//! unit-tested; the applier reads the taps over netlink and runs `nft -f -` (the whole table
//! in one transaction) and `tc -force -batch -` (every tap change in one process).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle};

use crate::error::{InvalidState, KernelError, NetError};
use crate::firewall::{RunFailure, find_program, on_thread_in, run_bounded, run_nft};
use crate::model::MacAddr;

/// What a VM tap's alias starts with; the guest NIC's MAC (lowercase, `:`-separated)
/// follows. See [`tap_alias`].
pub const TAP_ALIAS_PREFIX: &str = "nc-guest=";
/// Name prefix of the VM taps the limits apply to.
pub const TAP_PREFIX: &str = "nctap";
/// The nftables table of the source pins and upload policers (family `bridge`); nothing
/// else is touched.
pub const TABLE: &str = "novacron_ports";
/// Least rate accepted, in bits per second (64 kbit/s).
pub const MIN_RATE_BPS: u64 = 64_000;
/// Most rate accepted, in bits per second (100 Gbit/s).
pub const MAX_RATE_BPS: u64 = 100_000_000_000;
/// How long one `tc` run may take before it is killed.
pub const TC_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a tap's tbf queues before dropping, as time at the rate.
pub const TBF_LATENCY: &str = "50ms";
/// The major number of NovaCron's tbf handle, `4e43:` ("NC").
const TBF_MAJOR: u16 = 0x4e43;
/// The smallest tbf burst: ten full-size frames.
const MIN_TBF_BURST_BYTES: u64 = 16 * 1024;
/// The policer's burst, on top of the second at the rate the kernel gives its bucket
/// anyway: a bucket smaller than a frame never passes it, and a guest's frames reach the
/// bridge as GSO super-frames of up to 64 KiB (the default `gso_max_size`), more than one
/// second holds at the lowest rates.
const POLICER_BURST_BYTES: u64 = 64 * 1024;
/// Creates our table if missing, then deletes it: works whether or not it exists.
const REMOVE_SCRIPT: &str = "table bridge novacron_ports {}\ndelete table bridge novacron_ports\n";

/// A VM NIC with a bandwidth limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapedNic {
    /// The guest NIC's MAC, as its tap's alias names it.
    pub mac: MacAddr,
    /// Bits per second, each way (download and upload are limited separately).
    pub rate_bps: u64,
}

/// What one node's VM taps must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePorts {
    /// The guest MACs of the node's NICs on overlay networks: each tap whose alias names
    /// one of them sends with that source MAC only.
    pub guests: Vec<MacAddr>,
    /// The NICs with a bandwidth limit.
    pub shaped: Vec<ShapedNic>,
}

/// The alias of the tap that carries the guest NIC `mac`: `nc-guest=02:aa:bb:cc:dd:ee`.
pub fn tap_alias(mac: MacAddr) -> String {
    format!("{TAP_ALIAS_PREFIX}{mac}")
}

/// The guest NIC a tap alias names, None for any other alias.
fn guest_of(alias: &str) -> Option<MacAddr> {
    alias.strip_prefix(TAP_ALIAS_PREFIX)?.parse().ok()
}

/// The tbf burst (bucket size) for `rate_bps`: 10 ms at the rate, at least 16 KiB. The
/// bucket is what the tap may send at line speed after a pause: 10 ms is tc-tbf(8)'s
/// rule (rate / HZ with HZ = 100, so the shaper does not starve between timer ticks) and
/// keeps bursts short at any rate; the floor lets a few full-size frames through at once
/// at low rates (larger GSO frames are split by tbf).
pub fn tbf_burst_bytes(rate_bps: u64) -> u64 {
    (rate_bps / 8 / 100).max(MIN_TBF_BURST_BYTES)
}

/// Checks what nft or tc would refuse or misread, so a bad list changes nothing; the
/// limits by MAC.
fn validate(nics: &[ShapedNic]) -> Result<BTreeMap<MacAddr, u64>, InvalidState> {
    let mut by_mac = BTreeMap::new();
    for nic in nics {
        let (mac, rate_bps) = (nic.mac, nic.rate_bps);
        if !mac.is_unicast() {
            return Err(InvalidState::ShapedMacNotUnicast { mac });
        }
        if !(MIN_RATE_BPS..=MAX_RATE_BPS).contains(&rate_bps) {
            return Err(InvalidState::RateOutOfRange { mac, rate_bps });
        }
        if by_mac.insert(mac, rate_bps).is_some() {
            return Err(InvalidState::DuplicateShapedMac { mac });
        }
    }
    Ok(by_mac)
}

/// The nft script that replaces the table in one transaction with the policers of `nics`
/// and no pins (see [`render_table`]). Expects a valid list.
pub fn render(nics: &[ShapedNic]) -> String {
    let by_mac: BTreeMap<MacAddr, u64> = nics.iter().map(|n| (n.mac, n.rate_bps)).collect();
    render_table(&by_mac, &BTreeMap::new())
}

/// The taps to pin, each to its guest's MAC: those whose alias names one of `guests`.
fn pins(taps: &[Tap], guests: &BTreeSet<MacAddr>) -> BTreeMap<String, MacAddr> {
    taps.iter()
        .filter_map(|t| Some((t.name.clone(), t.guest.filter(|g| guests.contains(g))?)))
        .collect()
}

/// The nft script that replaces the table in one transaction: create it if missing,
/// delete it, build it again with the pins (by tap name) and then the policers (by MAC),
/// each sorted, so the same state always gives the same text. Nothing to hold: only the
/// deletion.
fn render_table(by_mac: &BTreeMap<MacAddr, u64>, pins: &BTreeMap<String, MacAddr>) -> String {
    let mut out = String::from(REMOVE_SCRIPT);
    if by_mac.is_empty() && pins.is_empty() {
        return out;
    }
    out.push_str("table bridge novacron_ports {\n\tchain prerouting {\n");
    out.push_str("\t\ttype filter hook prerouting priority -200; policy accept;\n");
    for (tap, mac) in pins {
        let _ = writeln!(out, "\t\tiifname \"{tap}\" ether saddr != {mac} drop");
    }
    for (mac, rate_bps) in by_mac {
        // One rule a line: nft 1.0.6 refuses `}` after a rule on the same line.
        let _ = writeln!(
            out,
            "\t\tiifname \"{TAP_PREFIX}*\" ether saddr {mac} limit rate over {} bytes/second burst {POLICER_BURST_BYTES} bytes drop",
            rate_bps / 8
        );
    }
    out.push_str("\t}\n}\n");
    out
}

/// A VM tap as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tap {
    name: String,
    /// The guest NIC its alias names.
    guest: Option<MacAddr>,
    /// Its root qdisc is NovaCron's tbf.
    has_our_tbf: bool,
}

/// One tap change, one line of a tc batch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TcChange {
    /// Put (or change) NovaCron's tbf at the tap's root.
    Shape { tap: String, rate_bps: u64 },
    /// Remove NovaCron's tbf from the tap's root.
    Unshape { tap: String },
}

impl TcChange {
    fn tap(&self) -> &str {
        match self {
            Self::Shape { tap, .. } | Self::Unshape { tap } => tap,
        }
    }

    /// Its line in a `tc -batch` script.
    fn line(&self) -> String {
        match self {
            Self::Shape { tap, rate_bps } => format!(
                "qdisc replace dev {tap} root handle {TBF_MAJOR:x}: tbf rate {rate_bps}bit burst {} latency {TBF_LATENCY}",
                tbf_burst_bytes(*rate_bps)
            ),
            // The handle makes the kernel refuse to delete any root qdisc but ours.
            Self::Unshape { tap } => format!("qdisc del dev {tap} root handle {TBF_MAJOR:x}:"),
        }
    }
}

/// The tap changes that bring `taps` to `wanted` (rate by guest MAC), given the rate each
/// tap was last shaped to (`shaped`, by tap name): a tap whose NIC has a limit gets our tbf
/// unless it has it already at that rate (a tap that came back under the same name has no
/// tbf of ours); a tap with our tbf and no limit loses it. NICs without a tap need nothing.
fn plan(
    taps: &[Tap],
    wanted: &BTreeMap<MacAddr, u64>,
    shaped: &BTreeMap<String, u64>,
) -> Vec<TcChange> {
    let mut changes = Vec::new();
    for tap in taps {
        let up_to_date = |rate_bps| tap.has_our_tbf && shaped.get(&tap.name) == Some(rate_bps);
        match tap.guest.and_then(|mac| wanted.get(&mac)) {
            Some(rate_bps) if up_to_date(rate_bps) => {}
            Some(&rate_bps) => changes.push(TcChange::Shape {
                tap: tap.name.clone(),
                rate_bps,
            }),
            None if tap.has_our_tbf => changes.push(TcChange::Unshape {
                tap: tap.name.clone(),
            }),
            None => {}
        }
    }
    changes
}

/// The `tc -batch` script of `changes`, one line each.
fn render_tc(changes: &[TcChange]) -> String {
    changes.iter().map(|c| c.line() + "\n").collect()
}

/// The failed lines of a `tc -force -batch -` run by line number (from 1), each with the
/// messages tc printed before saying `Command failed -:N`.
fn failed_lines(stderr: &str) -> BTreeMap<usize, String> {
    let mut failed = BTreeMap::new();
    let mut messages: Vec<&str> = Vec::new();
    for line in stderr.lines() {
        let number = line
            .trim()
            .strip_prefix("Command failed ")
            .and_then(|rest| rest.rsplit(':').next())
            .and_then(|n| n.parse::<usize>().ok());
        match number {
            Some(n) => {
                failed.insert(n, messages.join(" "));
                messages.clear();
            }
            None if !line.trim().is_empty() => messages.push(line.trim()),
            None => {}
        }
    }
    failed
}

/// What became of one tc change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TcOutcome {
    Done,
    /// The tap vanished, or (for [`TcChange::Unshape`]) our tbf was already gone.
    Moot,
    Failed(String),
}

/// Reads a failed line: a tap that vanished since the dump, or a removal that found no tbf
/// of ours, is nothing to fix.
fn outcome(change: &TcChange, message: &str) -> TcOutcome {
    let gone = message.contains("Cannot find device");
    let no_tbf = matches!(change, TcChange::Unshape { .. })
        && [
            "Invalid handle",
            "handle of zero",
            "No such file or directory",
        ]
        .iter()
        .any(|m| message.contains(m));
    if gone || no_tbf {
        TcOutcome::Moot
    } else {
        TcOutcome::Failed(message.to_string())
    }
}

/// Runs `changes` in one `tc -force -batch -` (a failed line does not stop the others),
/// killed after [`TC_TIMEOUT`]: the outcome of each.
fn run_tc(changes: &[TcChange]) -> Result<Vec<TcOutcome>, NetError> {
    let program = find_program("tc").ok_or(NetError::TcMissing)?;
    let batch = render_tc(changes);
    let exited = match run_bounded(&program, &["-force", "-batch", "-"], &batch, TC_TIMEOUT) {
        Ok(exited) => exited,
        Err(RunFailure::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NetError::TcMissing);
        }
        Err(RunFailure::Spawn(e) | RunFailure::Wait(e)) => return Err(NetError::TcRun(e)),
        Err(RunFailure::TimedOut) => {
            return Err(NetError::TcTimeout {
                timeout: TC_TIMEOUT,
            });
        }
    };
    if exited.status.success() {
        return Ok(vec![TcOutcome::Done; changes.len()]);
    }
    let failed = failed_lines(&exited.stderr);
    if failed.is_empty() {
        // Not a line's failure (tc itself could not start its work): every line failed.
        return Err(NetError::TcFailed {
            failed: changes.len(),
            total: changes.len(),
            detail: format!("{}: {}", exited.status, exited.stderr),
        });
    }
    Ok(changes
        .iter()
        .enumerate()
        .map(|(i, change)| match failed.get(&(i + 1)) {
            Some(message) => outcome(change, message),
            None => TcOutcome::Done,
        })
        .collect())
}

/// The current namespace's VM taps, with their aliases and whether their root qdisc is our
/// tbf: one link dump and one qdisc dump over a netlink socket of a runtime of its own (the
/// caller may be on a thread in another namespace, or inside another runtime).
fn observe_taps() -> Result<Vec<Tap>, NetError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetError::Socket)?;
    runtime.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
        tokio::spawn(conn);
        let failed = |what: &str, e: rtnetlink::Error| {
            NetError::ObserveTaps(KernelError::from_netlink(what.into(), &e))
        };
        let mut taps = Vec::new();
        let mut indexes = BTreeMap::new();
        let mut links = handle.link().get().execute();
        while let Some(msg) = links
            .try_next()
            .await
            .map_err(|e| failed("list links", e))?
        {
            let mut name = None;
            let mut alias = None;
            for attr in msg.attributes {
                match attr {
                    LinkAttribute::IfName(n) => name = Some(n),
                    LinkAttribute::IfAlias(a) => alias = Some(a),
                    _ => {}
                }
            }
            let Some(name) = name.filter(|n| n.starts_with(TAP_PREFIX)) else {
                continue;
            };
            indexes.insert(msg.header.index, taps.len());
            taps.push(Tap {
                name,
                guest: alias.as_deref().and_then(guest_of),
                has_our_tbf: false,
            });
        }
        let mut qdiscs = handle.qdisc().get().execute();
        while let Some(msg) = qdiscs
            .try_next()
            .await
            .map_err(|e| failed("list qdiscs", e))?
        {
            let ours = msg.header.parent == TcHandle::ROOT
                && msg.header.handle.major == TBF_MAJOR
                && msg
                    .attributes
                    .iter()
                    .any(|a| matches!(a, TcAttribute::Kind(k) if k == "tbf"));
            let tap = u32::try_from(msg.header.index)
                .ok()
                .and_then(|i| indexes.get(&i));
            if let (true, Some(&tap)) = (ours, tap) {
                taps[tap].has_our_tbf = true;
            }
        }
        Ok(taps)
    })
}

/// Keeps the bandwidth limits of the VM NICs in one network namespace equal to the last
/// list given: each apply reads the taps (a netlink dump of the links and one of the
/// qdiscs, cheap enough to call every few seconds), shapes the taps that need it (a tap that appeared, a rate that changed),
/// unshapes the taps whose NIC lost its limit, and rewrites the policers' table only when
/// the limits changed. A steady state runs no program.
///
/// `apply` blocks (a thread of its own, and `tc` and `nft` bounded by [`TC_TIMEOUT`] and
/// [`crate::firewall::NFT_TIMEOUT`]); from async code call it with `spawn_blocking`.
///
/// ```no_run
/// # fn demo(mac: novacron_net::MacAddr) -> Result<(), novacron_net::NetError> {
/// use novacron_net::{PortApplier, ShapedNic};
/// let mut qos = PortApplier::new();
/// // 200 Mbit/s each way; called again whenever the NICs change, and every few seconds
/// // for taps that appeared (a VM restarted or migrated here).
/// if qos.apply(&[ShapedNic { mac, rate_bps: 200_000_000 }])? {
///     println!("bandwidth limits changed");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct PortApplier {
    /// Namespace file (`/run/netns/NAME`) to work in; None is the caller's.
    netns: Option<PathBuf>,
    /// The table the kernel has, as far as we know (the last script applied); None:
    /// unknown, rewrite.
    table: Option<String>,
    /// The rate each tap was shaped to, by tap name.
    shaped: BTreeMap<String, u64>,
}

impl PortApplier {
    /// An applier for the caller's network namespace. Its first apply rewrites the
    /// table and shapes every tap with a limit again.
    pub fn new() -> Self {
        Self::default()
    }

    /// An applier for the network namespace at `path` (e.g. `/run/netns/NAME`): the taps
    /// are read and `tc` and `nft` run from a short-lived thread that entered it; the
    /// caller's namespace is untouched.
    pub fn in_netns(path: &Path) -> Self {
        Self {
            netns: Some(path.to_path_buf()),
            ..Self::default()
        }
    }

    /// Forgets what was applied, so the next [`PortApplier::apply`] rewrites the table and
    /// every tap's tbf (repairs what someone else changed).
    pub fn forget(&mut self) {
        self.table = None;
        self.shaped.clear();
    }

    /// Makes the taps and the policers match `nics`. Validates first (an invalid list
    /// changes nothing). A NIC whose tap does not exist yet is no error: a later apply
    /// shapes the tap once it is there. Ok(true) when it changed the kernel. A failure
    /// leaves what did succeed in place; the next apply retries the rest.
    pub fn apply(&mut self, nics: &[ShapedNic]) -> Result<bool, NetError> {
        self.apply_ports(&NodePorts {
            guests: vec![],
            shaped: nics.to_vec(),
        })
    }

    /// Makes the taps match `ports`: [`PortApplier::apply`] for its limits, and every tap
    /// of one of its guests pinned to that guest's MAC (the table is rewritten when a tap
    /// comes or goes).
    pub fn apply_ports(&mut self, ports: &NodePorts) -> Result<bool, NetError> {
        let wanted = validate(&ports.shaped)?;
        let mut guests = BTreeSet::new();
        for &mac in &ports.guests {
            if !mac.is_unicast() {
                return Err(InvalidState::PinnedMacNotUnicast { mac }.into());
            }
            guests.insert(mac);
        }
        let shaped = &self.shaped;
        let last = self.table.as_deref();
        let (taps, changes, tc, nft, pinned) = on_thread_in(self.netns.as_deref(), || {
            let taps = observe_taps()?;
            let changes = plan(&taps, &wanted, shaped);
            let tc = (!changes.is_empty()).then(|| run_tc(&changes));
            let pinned = pins(&taps, &guests);
            let script = render_table(&wanted, &pinned);
            let nft = (last != Some(script.as_str())).then(|| run_nft(&script).map(|()| script));
            Ok((taps, changes, tc, nft, pinned.len()))
        })?;

        // A tap that vanished needs nothing; one that comes back under its name starts over.
        let present: BTreeSet<&str> = taps.iter().map(|t| t.name.as_str()).collect();
        self.shaped
            .retain(|name, _| present.contains(name.as_str()));
        let shaped = match tc {
            None => Ok(false),
            Some(outcomes) => self.record_tc(&changes, outcomes),
        };
        let policed = match nft {
            None => Ok(false),
            Some(Ok(script)) => {
                tracing::info!(
                    limited = wanted.len(),
                    pinned,
                    "NIC source pins and upload limits applied"
                );
                self.table = Some(script);
                Ok(true)
            }
            Some(Err(e)) => {
                // The kernel may not hold what `table` says: rewrite next time.
                self.table = None;
                Err(e)
            }
        };
        match (shaped, policed) {
            (Ok(taps), Ok(table)) => Ok(taps || table),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(e), Err(nft)) => {
                tracing::warn!(error = %nft, "NIC upload limits not applied");
                Err(e)
            }
        }
    }

    /// Records what a tc batch did to the taps: Ok(true) when it changed one, an error
    /// naming the lines tc refused.
    fn record_tc(
        &mut self,
        changes: &[TcChange],
        outcomes: Result<Vec<TcOutcome>, NetError>,
    ) -> Result<bool, NetError> {
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // Unknown what ran: each of these taps is shaped again next time.
                for change in changes {
                    self.shaped.remove(change.tap());
                }
                return Err(e);
            }
        };
        let mut changed = false;
        let mut refused = Vec::new();
        for (change, outcome) in changes.iter().zip(outcomes) {
            let tap = change.tap();
            match (change, outcome) {
                (TcChange::Shape { rate_bps, .. }, TcOutcome::Done) => {
                    tracing::info!(tap, rate_bps, "NIC download limit set");
                    self.shaped.insert(tap.to_string(), *rate_bps);
                    changed = true;
                }
                (TcChange::Unshape { .. }, TcOutcome::Done) => {
                    tracing::info!(tap, "NIC download limit removed");
                    self.shaped.remove(tap);
                    changed = true;
                }
                (_, TcOutcome::Moot) => {
                    self.shaped.remove(tap);
                }
                (_, TcOutcome::Failed(message)) => {
                    self.shaped.remove(tap);
                    refused.push(format!("{}: {message}", change.line()));
                }
            }
        }
        if refused.is_empty() {
            Ok(changed)
        } else {
            Err(NetError::TcFailed {
                failed: refused.len(),
                total: changes.len(),
                detail: refused.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: MacAddr = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0a]);
    const MAC_B: MacAddr = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0b]);

    fn nic(mac: MacAddr, rate_bps: u64) -> ShapedNic {
        ShapedNic { mac, rate_bps }
    }

    fn tap(name: &str, guest: Option<MacAddr>, has_our_tbf: bool) -> Tap {
        Tap {
            name: name.into(),
            guest,
            has_our_tbf,
        }
    }

    fn wanted(nics: &[ShapedNic]) -> BTreeMap<MacAddr, u64> {
        validate(nics).unwrap_or_else(|e| panic!("{e}"))
    }

    fn shaped(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
        entries.iter().map(|(n, r)| (n.to_string(), *r)).collect()
    }

    fn shape(tap: &str, rate_bps: u64) -> TcChange {
        TcChange::Shape {
            tap: tap.into(),
            rate_bps,
        }
    }

    #[test]
    fn the_alias_names_the_guest_nic_lowercase() {
        let mac = MacAddr([0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE]);
        assert_eq!(tap_alias(mac), "nc-guest=02:aa:bb:cc:dd:ee");
        assert_eq!(guest_of(&tap_alias(mac)), Some(mac));
        for other in [
            "",
            "nc-guest=",
            "nc-guest=02:aa",
            "guest=02:aa:bb:cc:dd:ee",
            "uplink",
        ] {
            assert_eq!(guest_of(other), None, "{other:?}");
        }
    }

    #[test]
    fn taps_of_overlay_guests_are_pinned_before_any_policer() {
        let taps = [
            tap("nctap0", Some(MAC_A), false),
            tap("nctap1", Some(MAC_B), false),
            // A tap on a host bridge (not an overlay NIC) and one without an alias.
            tap("nctap2", Some(MacAddr([0x02, 0, 0, 0, 0, 9])), false),
            tap("nctap3", None, false),
        ];
        let guests: BTreeSet<MacAddr> = [MAC_A, MAC_B].into();
        let pins = pins(&taps, &guests);
        assert_eq!(
            pins.keys().map(String::as_str).collect::<Vec<_>>(),
            ["nctap0", "nctap1"]
        );
        let s = render_table(&wanted(&[nic(MAC_B, 8_000_000)]), &pins);
        let pin = s
            .find("iifname \"nctap0\" ether saddr != 02:aa:bb:cc:dd:0a drop")
            .unwrap_or_else(|| panic!("{s}"));
        let policer = s.find("limit rate over").unwrap_or_else(|| panic!("{s}"));
        assert!(pin < policer, "{s}");
        assert!(s.contains("iifname \"nctap1\" ether saddr != 02:aa:bb:cc:dd:0b drop"));
        // Pins alone still make a table; nothing at all removes it.
        assert!(render_table(&BTreeMap::new(), &pins).contains("chain prerouting"));
        assert_eq!(
            render_table(&BTreeMap::new(), &BTreeMap::new()),
            REMOVE_SCRIPT
        );
    }

    #[test]
    fn the_burst_is_ten_milliseconds_at_the_rate_with_a_floor() {
        // 20 Mbit/s = 2.5 MB/s: 25 kB in 10 ms.
        assert_eq!(tbf_burst_bytes(20_000_000), 25_000);
        assert_eq!(tbf_burst_bytes(200_000_000), 250_000);
        assert_eq!(tbf_burst_bytes(1_000_000), 16 * 1024);
        assert_eq!(tbf_burst_bytes(MIN_RATE_BPS), 16 * 1024);
        assert_eq!(tbf_burst_bytes(MAX_RATE_BPS), 125_000_000);
    }

    #[test]
    fn policers_replace_the_table_in_one_go_sorted_by_mac() {
        let script = render(&[nic(MAC_B, 40_000_000), nic(MAC_A, 20_000_000)]);
        assert_eq!(
            script,
            "table bridge novacron_ports {}\n\
             delete table bridge novacron_ports\n\
             table bridge novacron_ports {\n\
             \tchain prerouting {\n\
             \t\ttype filter hook prerouting priority -200; policy accept;\n\
             \t\tiifname \"nctap*\" ether saddr 02:aa:bb:cc:dd:0a limit rate over 2500000 bytes/second burst 65536 bytes drop\n\
             \t\tiifname \"nctap*\" ether saddr 02:aa:bb:cc:dd:0b limit rate over 5000000 bytes/second burst 65536 bytes drop\n\
             \t}\n\
             }\n"
        );
        assert_eq!(
            script,
            render(&[nic(MAC_A, 20_000_000), nic(MAC_B, 40_000_000)])
        );
        assert_eq!(render(&[]), REMOVE_SCRIPT);
    }

    #[test]
    fn the_tc_batch_has_a_line_per_tap() {
        let batch = render_tc(&[
            shape("nctap0", 20_000_000),
            TcChange::Unshape {
                tap: "nctap1".into(),
            },
            shape("nctap2", 1_000_000),
        ]);
        assert_eq!(
            batch,
            "qdisc replace dev nctap0 root handle 4e43: tbf rate 20000000bit burst 25000 latency 50ms\n\
             qdisc del dev nctap1 root handle 4e43:\n\
             qdisc replace dev nctap2 root handle 4e43: tbf rate 1000000bit burst 16384 latency 50ms\n"
        );
        assert_eq!(render_tc(&[]), "");
    }

    #[test]
    fn a_steady_state_plans_nothing() {
        let want = wanted(&[nic(MAC_A, 20_000_000)]);
        let taps = [
            tap("nctap0", Some(MAC_A), true),
            tap("nctap1", Some(MAC_B), false),
            tap("nctap2", None, false),
        ];
        assert_eq!(plan(&taps, &want, &shaped(&[("nctap0", 20_000_000)])), []);
    }

    #[test]
    fn new_and_changed_taps_are_shaped() {
        let want = wanted(&[nic(MAC_A, 20_000_000), nic(MAC_B, 40_000_000)]);
        // Never shaped; shaped at another rate; a tap that came back under its old name
        // (no tbf of ours although we shaped that name); a VM that restarted and got a
        // new tap (the old one is gone from the dump).
        let taps = [
            tap("nctap0", Some(MAC_A), false),
            tap("nctap1", Some(MAC_B), true),
        ];
        let before = shaped(&[("nctap1", 20_000_000)]);
        assert_eq!(
            plan(&taps, &want, &before),
            [shape("nctap0", 20_000_000), shape("nctap1", 40_000_000)]
        );
        let before = shaped(&[("nctap0", 20_000_000)]);
        assert_eq!(
            plan(&taps[..1], &want, &before),
            [shape("nctap0", 20_000_000)]
        );
        let taps = [tap("nctap7", Some(MAC_A), false)];
        assert_eq!(plan(&taps, &want, &before), [shape("nctap7", 20_000_000)]);
        // Ours but not tracked (an earlier agent's, or after forget): shaped again.
        let taps = [tap("nctap0", Some(MAC_A), true)];
        assert_eq!(
            plan(&taps, &want, &BTreeMap::new()),
            [shape("nctap0", 20_000_000)]
        );
    }

    #[test]
    fn only_our_tbf_leaves_a_tap_without_a_limit() {
        let want = wanted(&[nic(MAC_A, 20_000_000)]);
        let taps = [
            tap("nctap0", Some(MAC_B), true),
            tap("nctap1", None, true),
            tap("nctap2", Some(MAC_B), false),
        ];
        assert_eq!(
            plan(&taps, &want, &shaped(&[("nctap0", 20_000_000)])),
            [
                TcChange::Unshape {
                    tap: "nctap0".into()
                },
                TcChange::Unshape {
                    tap: "nctap1".into()
                },
            ]
        );
        // A limit without a tap waits for its tap.
        assert_eq!(plan(&[], &want, &BTreeMap::new()), []);
    }

    #[test]
    fn tc_failures_are_read_per_line_and_vanished_taps_are_moot() {
        let stderr = "Cannot find device \"nctap9\"\nCommand failed -:2\nError: Cannot delete qdisc with handle of zero.\nCommand failed -:3\nError: Specified qdisc kind is unknown.\nCommand failed -:4";
        let failed = failed_lines(stderr);
        assert_eq!(
            failed.keys().copied().collect::<Vec<_>>(),
            [2, 3, 4],
            "{failed:?}"
        );
        assert_eq!(failed[&2], "Cannot find device \"nctap9\"");
        let unshape = TcChange::Unshape {
            tap: "nctap1".into(),
        };
        assert_eq!(outcome(&shape("nctap9", 1), &failed[&2]), TcOutcome::Moot);
        assert_eq!(outcome(&unshape, &failed[&3]), TcOutcome::Moot);
        assert_eq!(outcome(&unshape, "Error: Invalid handle."), TcOutcome::Moot);
        // A shape that finds no qdisc support is a real failure.
        assert_eq!(
            outcome(&shape("nctap0", 1), &failed[&4]),
            TcOutcome::Failed("Error: Specified qdisc kind is unknown.".into())
        );
        assert_eq!(
            outcome(&shape("nctap0", 1), "Error: Invalid handle."),
            TcOutcome::Failed("Error: Invalid handle.".into())
        );
        assert!(failed_lines("").is_empty());
    }

    #[test]
    fn validation_rejects_what_the_kernel_would_refuse() {
        assert!(validate(&[]).is_ok_and(|m| m.is_empty()));
        assert_eq!(
            wanted(&[nic(MAC_A, MIN_RATE_BPS), nic(MAC_B, MAX_RATE_BPS)]).len(),
            2
        );
        for rate_bps in [0, MIN_RATE_BPS - 1, MAX_RATE_BPS + 1, u64::MAX] {
            let err = validate(&[nic(MAC_A, rate_bps)]).err();
            assert_eq!(
                err,
                Some(InvalidState::RateOutOfRange {
                    mac: MAC_A,
                    rate_bps
                })
            );
        }
        let msg = InvalidState::RateOutOfRange {
            mac: MAC_A,
            rate_bps: 0,
        }
        .to_string();
        assert!(
            msg.contains("02:aa:bb:cc:dd:0a") && msg.contains("64000"),
            "{msg}"
        );
        assert_eq!(
            validate(&[nic(MAC_A, 20_000_000), nic(MAC_A, 20_000_000)]).err(),
            Some(InvalidState::DuplicateShapedMac { mac: MAC_A })
        );
        let multicast = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
        assert_eq!(
            validate(&[nic(multicast, 20_000_000)]).err(),
            Some(InvalidState::ShapedMacNotUnicast { mac: multicast })
        );
    }
}
