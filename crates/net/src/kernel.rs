//! The netlink side: read the node's links and VXLAN FDB into an
//! [`Observed`], apply a plan's [`Action`]s one by one. A failed action is
//! recorded and the rest still run, so a reconcile makes all the progress it
//! can; the next one starts again from what the kernel then has.

use std::net::Ipv4Addr;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVxlan, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVxlan};

use crate::error::{KernelError, NetError};
use crate::model::{DesiredNode, MacAddr, OwnedDevice};
use crate::plan::{
    Action, FdbEntry, LinkKind, NeighbourEntry, Observed, ObservedLink, StaticFdbEntry,
    VxlanParams, plan,
};

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// Actions the kernel accepted, in order.
    pub applied: Vec<Action>,
    /// Actions that failed; the next reconcile retries them.
    pub failures: Vec<KernelError>,
}

impl ReconcileReport {
    /// True when the kernel now matches the desired state.
    pub fn converged(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Makes one network namespace's bridges, VXLAN devices, ports and FDB match a
/// [`DesiredNode`].
///
/// ```no_run
/// # async fn demo(desired: novacron_net::DesiredNode) -> Result<(), novacron_net::NetError> {
/// let reconciler = novacron_net::Reconciler::connect()?;
/// let report = reconciler.reconcile(&desired).await?;
/// for failure in &report.failures {
///     eprintln!("{failure}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Reconciler {
    handle: Handle,
}

impl Reconciler {
    /// Opens a netlink socket in the caller's network namespace. Must run inside
    /// a tokio runtime, which drives the socket from then on.
    pub fn connect() -> Result<Self, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Opens the netlink socket inside the network namespace at `path` (e.g.
    /// `/run/netns/NAME`); the caller's own namespace is untouched. A socket
    /// stays in the namespace it was created in, so only a short-lived thread
    /// enters it. Must run inside a tokio runtime.
    pub fn connect_in_netns(path: &Path) -> Result<Self, NetError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| NetError::Socket(std::io::Error::other(e)))?;
        let ns_err = |source| NetError::Namespace {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(ns_err)?;
        let (conn, handle, _) = crate::netns::run_in(&file, || {
            let _enter = runtime.enter();
            rtnetlink::new_connection()
        })
        .map_err(ns_err)?
        .map_err(NetError::Socket)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// Brings the kernel to `desired`: validates it (nothing changes when it is
    /// invalid), reads the kernel, applies the difference. Idempotent: a second
    /// call with the same state applies nothing.
    pub async fn reconcile(&self, desired: &DesiredNode) -> Result<ReconcileReport, NetError> {
        let valid = desired.validate()?;
        let observed = self.observe().await.map_err(NetError::Observe)?;
        let actions = plan(&valid, &observed);
        let mut report = ReconcileReport::default();
        for action in actions {
            match self.apply(&action).await {
                Ok(()) => {
                    tracing::info!(action = %action, "network data plane changed");
                    report.applied.push(action);
                }
                Err(error) => {
                    tracing::warn!(action = %action, %error, "network data plane change failed");
                    report.failures.push(error);
                }
            }
        }
        Ok(report)
    }

    /// Reads every link, the remote-destination and static bridge FDB entries of
    /// NovaCron's VXLAN devices, and the permanent neighbours of its bridges.
    pub async fn observe(&self) -> Result<Observed, KernelError> {
        let mut links = Vec::new();
        let mut stream = self.handle.link().get().execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink("list links".into(), &e))?
        {
            links.push(observed_link(&msg));
        }
        // The indices of our devices of one kind.
        let ours = |kind: fn(&OwnedDevice) -> bool| -> Vec<u32> {
            links
                .iter()
                .filter(|l| OwnedDevice::from_name(&l.name).is_some_and(|d| kind(&d)))
                .map(|l| l.index)
                .collect()
        };
        let vxlans = ours(|d| matches!(d, OwnedDevice::Vxlan(_)));
        let bridges = ours(|d| matches!(d, OwnedDevice::Bridge(_)));
        let entries = self
            .neighbours_of(AddressFamily::Bridge, &vxlans, "list bridge FDB")
            .await?;
        let fdb = entries.iter().filter_map(fdb_entry).collect();
        let static_fdb = entries.iter().filter_map(static_fdb_entry).collect();
        let neighbours = self
            .neighbours_of(AddressFamily::Inet, &bridges, "list neighbours")
            .await?
            .iter()
            .filter_map(neighbour_entry)
            .collect();
        Ok(Observed {
            links,
            fdb,
            static_fdb,
            neighbours,
        })
    }

    /// One dump of the `family` neighbour table (the FDB for `AddressFamily::Bridge`): the
    /// entries of the devices `devices`.
    async fn neighbours_of(
        &self,
        family: AddressFamily,
        devices: &[u32],
        what: &str,
    ) -> Result<Vec<NeighbourMessage>, KernelError> {
        let mut out = Vec::new();
        let mut stream = self
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| KernelError::from_netlink(what.into(), &e))?
        {
            if devices.contains(&msg.header.ifindex) {
                out.push(msg);
            }
        }
        Ok(out)
    }

    async fn apply(&self, action: &Action) -> Result<(), KernelError> {
        let what = action.to_string();
        let nl = |e: rtnetlink::Error| KernelError::from_netlink(what.clone(), &e);
        match action {
            Action::DeleteLink { name } => {
                let index = self.index_of(name, &what).await?;
                self.handle.link().del(index).execute().await.map_err(nl)
            }
            Action::CreateBridge { name, mtu } => {
                let msg = LinkBridge::new(name).mtu(*mtu).build();
                self.handle.link().add(msg).execute().await.map_err(nl)
            }
            Action::CreateVxlan {
                name,
                vni,
                local,
                port,
                mtu,
                bridge,
            } => {
                let bridge = self.index_of(bridge, &what).await?;
                let msg = LinkVxlan::new(name, vni.get())
                    .local(*local)
                    .port(*port)
                    .learning(false)
                    .mtu(*mtu)
                    .controller(bridge)
                    .up()
                    .build();
                self.handle.link().add(msg).execute().await.map_err(nl)
            }
            Action::SetLink { name, mtu, bridge } => {
                let index = self.index_of(name, &what).await?;
                let msg = LinkUnspec::new_with_index(index).mtu(*mtu).up();
                let msg = match bridge {
                    Some(bridge) => msg.controller(self.index_of(bridge, &what).await?),
                    // A network's bridge is nobody's port.
                    None => msg.nocontroller(),
                };
                self.handle
                    .link()
                    .change(msg.build())
                    .execute()
                    .await
                    .map_err(nl)
            }
            Action::PortMissing { port, vni } => Err(KernelError::PortMissing {
                port: port.clone(),
                vni: *vni,
            }),
            Action::DetachPort { name } => {
                let index = self.index_of(name, &what).await?;
                let msg = LinkUnspec::new_with_index(index).nocontroller().build();
                self.handle.link().change(msg).execute().await.map_err(nl)
            }
            Action::AddFdb { vxlan, mac, dst } => {
                let index = self.index_of(vxlan, &what).await?;
                // A flood list has one all-zeros entry per remote VTEP (append);
                // a VM MAC has one destination, replaced when the VM moves.
                let mode = if *mac == MacAddr::ZERO {
                    NLM_F_APPEND
                } else {
                    NLM_F_REPLACE
                };
                let msg = fdb_message(index, *mac, *dst);
                self.create(RouteNetlinkMessage::NewNeighbour(msg), mode, &nl)
                    .await
            }
            Action::DelFdb { vxlan, mac, dst } => {
                let index = self.index_of(vxlan, &what).await?;
                self.handle
                    .neighbours()
                    .del(fdb_message(index, *mac, *dst))
                    .execute()
                    .await
                    .map_err(nl)
            }
            Action::SuppressArp { port } => {
                let index = self.index_of(port, &what).await?;
                let msg = LinkBridgePort::new(index).neigh_suppress(true).build();
                self.handle.link().set_port(msg).execute().await.map_err(nl)
            }
            Action::AddStaticFdb { vxlan, mac } => {
                let index = self.index_of(vxlan, &what).await?;
                self.create(
                    RouteNetlinkMessage::NewNeighbour(static_fdb_message(index, *mac)),
                    NLM_F_REPLACE,
                    &nl,
                )
                .await
            }
            Action::DelStaticFdb { vxlan, mac } => {
                let index = self.index_of(vxlan, &what).await?;
                self.handle
                    .neighbours()
                    .del(static_fdb_message(index, *mac))
                    .execute()
                    .await
                    .map_err(nl)
            }
            Action::AddNeighbour { bridge, ip, mac } => {
                let index = self.index_of(bridge, &what).await?;
                self.create(
                    RouteNetlinkMessage::NewNeighbour(neighbour_message(index, *ip, *mac)),
                    NLM_F_REPLACE,
                    &nl,
                )
                .await
            }
            Action::DelNeighbour { bridge, ip, mac } => {
                let index = self.index_of(bridge, &what).await?;
                self.handle
                    .neighbours()
                    .del(neighbour_message(index, *ip, *mac))
                    .execute()
                    .await
                    .map_err(nl)
            }
        }
    }

    /// Sends `msg` as a create request with `mode` (`NLM_F_REPLACE` or `NLM_F_APPEND`)
    /// and waits for its acknowledgement.
    async fn create(
        &self,
        msg: RouteNetlinkMessage,
        mode: u16,
        nl: &impl Fn(rtnetlink::Error) -> KernelError,
    ) -> Result<(), KernelError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | mode;
        let mut handle = self.handle.clone();
        let mut response = handle.request(req).map_err(nl)?;
        while let Some(reply) = response.next().await {
            if let NetlinkPayload::Error(err) = reply.payload
                && err.code.is_some()
            {
                return Err(nl(rtnetlink::Error::NetlinkError(err)));
            }
        }
        Ok(())
    }

    /// Gives the bridge of network `vni` the address `ip/prefix_len` (idempotent: an
    /// address already there is replaced in place). A node-local DHCP server on the bridge
    /// needs an address in the subnet; it is the network's gateway address on every node.
    pub async fn ensure_bridge_address(
        &self,
        vni: crate::Vni,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), KernelError> {
        let bridge = vni.bridge_name();
        let what = format!("address {ip}/{prefix_len} on {bridge}");
        let index = self.index_of(&bridge, &what).await?;
        self.handle
            .address()
            .add(index, std::net::IpAddr::V4(ip), prefix_len)
            .replace()
            .execute()
            .await
            .map_err(|e| KernelError::from_netlink(what, &e))
    }

    /// Gives network `vni`'s bridge the MAC `mac` (the gateway's, the same on every
    /// node); a bridge with an address set this way keeps it as ports come and go.
    pub async fn ensure_bridge_mac(
        &self,
        vni: crate::Vni,
        mac: crate::MacAddr,
    ) -> Result<(), KernelError> {
        let bridge = vni.bridge_name();
        let what = format!("MAC {mac} on {bridge}");
        let index = self.index_of(&bridge, &what).await?;
        self.handle
            .link()
            .change(
                LinkUnspec::new_with_index(index)
                    .address(mac.0.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| KernelError::from_netlink(what, &e))
    }

    async fn index_of(&self, name: &str, action: &str) -> Result<u32, KernelError> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(msg.header.index),
            Ok(None) => Err(KernelError::DeviceVanished {
                action: action.to_string(),
                device: name.to_string(),
            }),
            Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::ENODEV => {
                Err(KernelError::DeviceVanished {
                    action: action.to_string(),
                    device: name.to_string(),
                })
            }
            Err(e) => Err(KernelError::from_netlink(action.to_string(), &e)),
        }
    }
}

fn observed_link(msg: &LinkMessage) -> ObservedLink {
    let mut name = String::new();
    let mut mtu = 0;
    let mut controller = None;
    let mut kind = LinkKind::Other;
    let mut vxlan = VxlanParams {
        vni: 0,
        local: None,
        port: 0,
        learning: true,
    };
    let mut is_vxlan = false;
    let mut neigh_suppress = false;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::Controller(c) => controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Bridge) => kind = LinkKind::Bridge,
                        LinkInfo::Kind(InfoKind::Vxlan) => is_vxlan = true,
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            neigh_suppress = port
                                .iter()
                                .any(|p| matches!(p, InfoBridgePort::NeighSupress(true)));
                        }
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            for d in data {
                                match d {
                                    InfoVxlan::Id(v) => vxlan.vni = *v,
                                    InfoVxlan::Local(a) => vxlan.local = Some(*a),
                                    InfoVxlan::Port(p) => vxlan.port = *p,
                                    InfoVxlan::Learning(l) => vxlan.learning = *l,
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if is_vxlan {
        kind = LinkKind::Vxlan(vxlan);
    }
    ObservedLink {
        index: msg.header.index,
        name,
        kind,
        mtu,
        up: msg.header.flags.contains(LinkFlags::Up),
        controller,
        neigh_suppress,
    }
}

/// The VXLAN device's own (`self`) entries with an IPv4 remote; the bridge's
/// learned entries (no destination) are skipped.
fn fdb_entry(msg: &NeighbourMessage) -> Option<FdbEntry> {
    if !msg.header.flags.contains(NeighbourFlags::Own) {
        return None;
    }
    let mut mac = None;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
            // In an AF_BRIDGE dump the parser cannot tell the address family.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                dst = <[u8; 4]>::try_from(bytes.as_slice())
                    .ok()
                    .map(Ipv4Addr::from);
            }
            _ => {}
        }
    }
    Some(FdbEntry {
        ifindex: msg.header.ifindex,
        mac: mac?,
        dst: dst?,
    })
}

fn fdb_message(ifindex: u32, mac: MacAddr, dst: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    msg
}

/// A static entry of the bridge's own FDB (`master static`: state NOARP, the bridge named
/// as master), as against the VXLAN device's `self` entries and the bridge's learned and
/// local ones.
fn static_fdb_entry(msg: &NeighbourMessage) -> Option<StaticFdbEntry> {
    if msg.header.flags.contains(NeighbourFlags::Own) || msg.header.state != NeighbourState::Noarp {
        return None;
    }
    let mut mac = None;
    let mut bridged = false;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
            }
            NeighbourAttribute::Controller(_) => bridged = true,
            _ => {}
        }
    }
    bridged.then_some(StaticFdbEntry {
        ifindex: msg.header.ifindex,
        mac: mac?,
    })
}

fn static_fdb_message(ifindex: u32, mac: MacAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Noarp;
    msg.header.flags = NeighbourFlags::Controller;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg
}

/// A permanent IPv4 neighbour with a MAC (others are the kernel's own).
fn neighbour_entry(msg: &NeighbourMessage) -> Option<NeighbourEntry> {
    if msg.header.state != NeighbourState::Permanent {
        return None;
    }
    let mut mac = None;
    let mut ip = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            _ => {}
        }
    }
    Some(NeighbourEntry {
        ifindex: msg.header.ifindex,
        ip: ip?,
        mac: mac?,
    })
}

fn neighbour_message(ifindex: u32, ip: Ipv4Addr, mac: MacAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg
}
