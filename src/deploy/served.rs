//! The deployment a server runs: what its intake checks signals against,
//! and read again whole for a reload (`intake::reload::Served`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::Deployment;
use crate::engine::reload::Reload;
use crate::intake::reload::{Prepared, Served};
use crate::signal::{Signal, SignalError};

/// The deployment being served, and where it is read from.
pub struct ServedDeployment {
    dir: PathBuf,
    current: Arc<Mutex<Deployment>>,
}

impl ServedDeployment {
    pub fn new(deployment: Deployment) -> ServedDeployment {
        ServedDeployment {
            dir: deployment.dir.clone(),
            current: Arc::new(Mutex::new(deployment)),
        }
    }
}

impl Served for ServedDeployment {
    fn check_data(&self, signal: &Signal) -> Result<(), SignalError> {
        match self.current.lock() {
            Ok(current) => current
                .rules
                .playbook
                .check_data(&signal.kind, &signal.data),
            Err(_) => Ok(()),
        }
    }

    fn prepare(&self) -> Result<Prepared, Vec<String>> {
        let next = Deployment::load(&self.dir).map_err(|problems| {
            problems
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        })?;
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
        let current = Arc::clone(&self.current);
        Ok(Prepared {
            reload,
            adopt: Box::new(move || {
                if let Ok(mut current) = current.lock() {
                    *current = next;
                }
            }),
        })
    }
}
