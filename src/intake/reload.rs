//! Reloading a deployment while `serve` runs (SIGHUP, `POST
//! /v1/config/reload`): the whole directory is read and checked first, off
//! the engine's thread; a deployment with any problem is refused with them
//! all while the last good one keeps deciding; a good one is applied by the
//! engine between two signals and journaled.
//!
//! The intake knows a deployment only as `Served`, which the deployment's
//! own layer implements (`deploy::ServedDeployment`): the intake sits
//! below the deployment and never reads its files.

use tokio::sync::oneshot;

use crate::engine::EngineError;
use crate::engine::host::{Busy, Command, Handle};
use crate::engine::reload::{Reload, Versions};
use crate::review::Actor;
use crate::signal::{Signal, SignalError};

/// The deployment a server runs, as the intake needs it.
pub trait Served: Send + Sync {
    /// Refuses a signal whose data lacks what its type declares.
    fn check_data(&self, signal: &Signal) -> Result<(), SignalError>;

    /// Reads the deployment again and checks it whole (file IO: call from
    /// a blocking context): what the engine is to take, or every problem.
    fn prepare(&self) -> Result<Prepared, Vec<String>>;
}

/// A deployment read again and found whole.
pub struct Prepared {
    /// What the engine takes.
    pub reload: Box<Reload>,
    /// Makes it the one served, once the engine has taken it.
    pub adopt: Box<dyn FnOnce() + Send>,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the deployment has problems; the running one stays:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("the engine is busy or stopped")]
    Busy(Busy),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the engine stopped before answering")]
    Gone,
}

/// Reads `served` again and, if it is whole, has the engine take it; the
/// engine's answer once the reload is journaled.
pub async fn reload(
    served: &dyn Served,
    engine: &Handle,
    actor: Actor,
) -> Result<Versions, ReloadError> {
    let prepared =
        tokio::task::block_in_place(|| served.prepare()).map_err(ReloadError::Invalid)?;
    let (tx, rx) = oneshot::channel();
    engine
        .send(Command::Reload {
            reload: prepared.reload,
            actor,
            reply: tx,
        })
        .map_err(ReloadError::Busy)?;
    let versions = rx.await.map_err(|_| ReloadError::Gone)??;
    (prepared.adopt)();
    Ok(versions)
}
