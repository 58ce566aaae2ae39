//! The console's link vocabulary: what reaches the UI from an engine,
//! embedded or remote (`Update`), how the link to a server stands, and how
//! much the tables keep. `app`, `feed`, `driver` and `attach` all speak it
//! and import it from here; none of them imports another for it.

use std::time::Duration;

use crate::engine::EngineEvent;
pub use crate::engine::overview::{BreakerRow, Overview as Status, ServiceRow, TeamRow, status};

/// Signals and decisions the console keeps (the newest), in its tables and
/// in what the feed holds between two takes.
pub const MAX_SIGNALS: usize = 50_000;
pub const MAX_DECISIONS: usize = 50_000;

/// What an engine, embedded or remote, tells the UI.
pub enum Update {
    Events(Vec<EngineEvent>),
    Status(Box<Status>),
    Failed(String),
    /// A server's whole state (an attached console's start, or after a reset).
    Snapshot(Box<crate::engine::overview::State>),
    /// How the link to the server stands.
    Link(Link),
    /// The last round trip to the server.
    Rtt(Duration),
}

/// How the link to the server stands, for the header.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// Lost, with why; reconnecting (attempt n).
    Lost {
        why: String,
        attempt: u32,
    },
}

/// The server, the link's state and the last round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub server: String,
    pub state: LinkState,
    pub rtt: Option<Duration>,
}
