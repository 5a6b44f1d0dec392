//! NovaCron benchmark scenarios. Each module is one `novacron bench <name>` subcommand's engine:
//! it sets up what it measures, runs the system and its baselines side by side, and returns a
//! serialisable report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod corpus;
pub mod floor;
pub mod matrix;
pub mod migration;
pub mod transport;
