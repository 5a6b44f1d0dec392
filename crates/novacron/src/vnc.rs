//! `novacron vm console NAME --vnc [--listen ADDR]`: the graphical console of a VM created
//! with `--vnc`. The CLI listens on a local port, and relays each VNC viewer that connects
//! to the VM's screen through the API (one upgraded HTTPS connection per viewer), so the
//! node never opens a port: who may look is the control plane's role decision.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::{Context, bail};
use novacron_client::Client;

use crate::output::Format;

/// Where the relay listens unless told: the first free port from here up to [`LAST_PORT`].
const FIRST_PORT: u16 = 5901;
const LAST_PORT: u16 = 5999;

pub async fn serve(
    c: Client,
    out: Format,
    name: &str,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    // Refuse before listening: a viewer would only see its connection drop.
    let vm = c.vm_get(name).await?;
    if !vm.vnc {
        bail!(
            "VM {name} has no graphical console: it was created without --vnc (its serial console is `novacron vm console {name}`)"
        );
    }
    let listener = bind(listen)?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: {addr} is not a loopback address; anyone who reaches it sees and types into {name}'s screen without a password"
        );
    }
    match out {
        Format::Json => println!(
            "{}",
            serde_json::json!({ "vm": name, "listen": addr.to_string() })
        ),
        Format::Table => println!("listening {addr}"),
    }
    eprintln!(
        "Point a VNC viewer at {addr} (e.g. `vncviewer {addr}`) for the screen of {name}; Ctrl-C ends."
    );
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = accepted.context("accepting a viewer")?;
                tokio::spawn(relay(c.clone(), name.to_string(), tcp, peer));
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

/// The listener: `listen` exactly, or the first free port of 127.0.0.1:5901-5999.
fn bind(listen: Option<SocketAddr>) -> anyhow::Result<TcpListener> {
    if let Some(addr) = listen {
        return TcpListener::bind(addr).with_context(|| format!("--listen {addr}"));
    }
    for port in FIRST_PORT..=LAST_PORT {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e).context(format!("listening on 127.0.0.1:{port}")),
        }
    }
    bail!(
        "every port of 127.0.0.1:{FIRST_PORT}-{LAST_PORT} is in use: pass --listen 127.0.0.1:0 for any free port"
    )
}

/// One viewer: its bytes to the VM's VNC server and back, until either side closes.
async fn relay(c: Client, name: String, mut tcp: tokio::net::TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    match c.vm_vnc_attach(&name).await {
        Ok(mut vm) => {
            eprintln!("viewer {peer} connected");
            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut vm).await;
            eprintln!("viewer {peer} left");
        }
        Err(e) => eprintln!("viewer {peer}: {e}"),
    }
}
