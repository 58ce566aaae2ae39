//! Reloading a deployment while `serve` runs (SIGHUP, `POST
//! /v1/config/reload`): the whole directory is read and checked first, off
//! the engine's thread; a deployment with any problem is refused with them
//! all while the last good one keeps deciding; a good one is applied by the
//! engine between two signals and journaled.

use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::deploy::{Deployment, Problems};
use crate::engine::EngineError;
use crate::engine::host::{Busy, Command, Handle};
use crate::engine::reload::{Reload, Versions};
use crate::review::Actor;

/// The deployment being served, and where it is read from.
pub struct Reloader {
    dir: PathBuf,
    current: Mutex<Deployment>,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the deployment has problems; the running one stays:\n{0}")]
    Invalid(Problems),
    #[error("the engine is busy or stopped")]
    Busy(Busy),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the engine stopped before answering")]
    Gone,
}

impl Reloader {
    pub fn new(deployment: Deployment) -> Reloader {
        Reloader {
            dir: deployment.dir.clone(),
            current: Mutex::new(deployment),
        }
    }

    /// Refuses a signal whose data lacks what its type declares in the
    /// deployment being served (`playbook::fields`).
    pub fn check_data(
        &self,
        signal: &crate::signal::Signal,
    ) -> Result<(), crate::signal::SignalError> {
        match self.current.lock() {
            Ok(current) => current
                .rules
                .playbook
                .check_data(&signal.kind, &signal.data),
            Err(_) => Ok(()),
        }
    }

    /// Reads the directory again and, if it is whole, has the engine take
    /// it. Blocks on file IO: call from a blocking context.
    pub fn prepare(&self) -> Result<(Box<Reload>, Deployment), ReloadError> {
        let next = Deployment::load(&self.dir).map_err(ReloadError::Invalid)?;
        let summary = match self.current.lock() {
            Ok(current) => next.summary_against(&current),
            Err(_) => "the previous deployment is unknown".into(),
        };
        let reload = Box::new(Reload {
            rules: next.rules.clone(),
            world: next.organization.world.clone(),
            webhooks: next.webhooks(),
            summary,
        });
        Ok((reload, next))
    }

    /// `prepare`, then the engine's answer once the reload is journaled.
    pub async fn reload(&self, engine: &Handle, actor: Actor) -> Result<Versions, ReloadError> {
        let (reload, next) = tokio::task::block_in_place(|| self.prepare())?;
        let (tx, rx) = oneshot::channel();
        engine
            .send(Command::Reload {
                reload,
                actor,
                reply: tx,
            })
            .map_err(ReloadError::Busy)?;
        let versions = rx.await.map_err(|_| ReloadError::Gone)??;
        if let Ok(mut current) = self.current.lock() {
            *current = next;
        }
        Ok(versions)
    }
}
