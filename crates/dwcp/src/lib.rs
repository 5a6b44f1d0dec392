//! DWCP, the Distributed WAN Communication Protocol: NovaCron's node-to-node bulk transport.
//!
//! - [`connect`] / [`Listener`] make a [`Session`]: mutually authenticated TLS 1.3
//!   (X25519MLKEM768 preferred) striped over N TCP streams whose count adapts to the path
//!   (AMST), carrying ordered [`Channel`]s of messages.
//! - [`hde`] is the block codec (dedup by fingerprint, XOR+RLE deltas, zstd) usable on its
//!   own or through [`BlockSender`] / [`BlockReceiver`] on a channel.
//! - [`auth`]: a listener can accept only the node it expects, proving a shared secret.
//! - [`Session::path_estimate`] exposes PBA's bandwidth/RTT estimate and forecast.
//!
//! See docs/dwcp.md in the repository for a runnable example.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod blocks;
pub mod error;
pub mod frame;
pub mod hde;
pub mod mode;
pub mod pba;
mod session;
pub mod sockopt;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use auth::SessionSecret;
pub use blocks::{BlockReceiver, BlockSender};
pub use error::{DwcpError, FrameError, HdeError, TlsError};
pub use mode::{Mode, ModeSetting};
pub use pba::{Forecast, PathEstimate};
#[doc(hidden)]
pub use session::fuzz_peer_frames;
pub use session::{
    Channel, CongestionControl, Listener, Session, SessionOptions, SessionStats, connect,
};
pub use tls::{KeyExchange, TlsIdentity, TlsInfo};
