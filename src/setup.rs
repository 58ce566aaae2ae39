//! One setup for every engine: its settings (`EngineConfig`) and the world
//! it starts from, for a deployment or for the Northwind demo, with the
//! server's settings (webhooks, retry and breaker timings, claim expiry,
//! notifications) and the candidates named on the command line. `serve`,
//! the console (on the simulator or on a deployment), the journal commands,
//! headless runs and the benchmark take their engine from here, and
//! nothing sets an engine's options once it is open.

use std::path::Path;

use chrono::{DateTime, Utc};
use rand::SeedableRng;

use crate::config::{Config, ConfigError};
use crate::context::World;
use crate::decide::CandidateFiles;
use crate::deploy::Deployment;
use crate::engine::EngineConfig;
use crate::journal::author::Author;

/// What an engine runs on.
#[derive(Clone, Copy)]
pub enum Runs<'a> {
    /// A deployment directory (`signalbox init`): its rules, organization,
    /// webhooks and settings, on the wall clock.
    Deployment(&'a Deployment),
    /// The Northwind world drawn from `seed`, with its simulated executors,
    /// under the settings of the user's `config.toml`.
    Demo { seed: u64, server: &'a Config },
}

impl Runs<'_> {
    /// The server settings in force: the deployment's, or the user's.
    pub fn server(&self) -> &Config {
        match self {
            Runs::Deployment(d) => &d.server,
            Runs::Demo { server, .. } => server,
        }
    }
}

/// An engine's settings and the world a fresh journal starts from.
pub struct Setup {
    pub config: EngineConfig,
    pub world: World,
}

/// The engine for `runs` on the journal in `data_dir`, with `candidates`
/// beside its rules. A demo world starts at `start`.
pub fn engine(
    runs: Runs<'_>,
    data_dir: &Path,
    candidates: CandidateFiles,
    start: DateTime<Utc>,
) -> Result<Setup, ConfigError> {
    let server = runs.server();
    let (mut config, world) = match runs {
        Runs::Deployment(deployment) => {
            let mut config = EngineConfig::new(data_dir, 1);
            config.rules = Some(deployment.rules.clone());
            config.author = Author::deployment(&deployment.dir);
            config.webhooks = deployment.webhooks();
            let world = deployment.organization.world.clone();
            // A resumed journal keeps its own entities; the deployment's
            // organization is taken over them.
            config.organization = Some(world.clone());
            (config, world)
        }
        Runs::Demo { seed, server } => {
            let world = crate::sim::world::northwind(
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                start,
            );
            let mut config = crate::sim::engine_config(data_dir, seed);
            config.webhooks = server.webhooks.clone();
            (config, world)
        }
    };
    let (retry_base, breaker_cooldown) = server.execution_durations()?;
    config.retry_base = retry_base;
    config.breaker_cooldown = breaker_cooldown;
    config.claim_expiry = server.claim_expiry()?;
    config.review_page = server.review.as_ref().and_then(|r| r.page.clone());
    config.silence_max = server.silence_max()?;
    config.review_budget = server
        .review
        .as_ref()
        .map(|r| r.budget.clone())
        .unwrap_or_default();
    config.task_bound = server
        .tasks
        .as_ref()
        .map(|t| t.bound.clone())
        .unwrap_or_default();
    config.notices = !server.notify.is_empty();
    config.candidates = candidates;
    Ok(Setup { config, world })
}
