//! A deployment directory: one operation's own organization, signal types,
//! playbook, step templates, policies and server settings, as files that
//! `signalbox init` starts, `signalbox validate` checks and
//! `signalbox serve --config DIR` runs on (and reloads on SIGHUP or
//! `POST /v1/config/reload`).
//!
//! ```text
//! signalbox.toml     server: listen, data_dir, tokens, intake, execution, tls, notify
//! organization.toml  calendar, teams, agents, services, executors, customers
//! playbook.toml      signal types (context updates, options, SLA), options
//! steps.toml         step templates
//! policies.toml      CEL rules, thresholds, model settings
//! ```

pub mod org;
pub mod problem;
mod roster;
mod served;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::CatalogueError;
use crate::config::Config;
use crate::decide::Rules;
use crate::decide::policy::{PolicyError, PolicySet};
use crate::playbook::Playbook;
use crate::playbook::steps::StepCatalogue;
pub use org::{ExecutorKind, Organization};
use problem::Source;
pub use problem::{Problem, Problems};
pub use served::ServedDeployment;

pub const SERVER_FILE: &str = "signalbox.toml";
pub const ORG_FILE: &str = "organization.toml";
pub const PLAYBOOK_FILE: &str = "playbook.toml";
pub const STEPS_FILE: &str = "steps.toml";
pub const POLICY_FILE: &str = "policies.toml";

/// The files `signalbox init` writes, as shipped.
pub const STARTER: [(&str, &str); 5] = [
    (SERVER_FILE, include_str!("../../starter/signalbox.toml")),
    (ORG_FILE, include_str!("../../starter/organization.toml")),
    (PLAYBOOK_FILE, include_str!("../../starter/playbook.toml")),
    (STEPS_FILE, include_str!("../../starter/steps.toml")),
    (POLICY_FILE, include_str!("../../starter/policies.toml")),
];

/// A deployment, read and checked whole.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub dir: PathBuf,
    /// signalbox.toml, with paths made absolute.
    pub server: Config,
    pub organization: Organization,
    pub rules: Rules,
}

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already holds {1}; signalbox init writes only into a directory without one")]
    Exists(String, &'static str),
    #[error("{path}: {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
}

/// Writes the starter files into `dir` (created if need be); refuses if
/// any of them is there already.
pub fn init(dir: &Path) -> Result<(), InitError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error| InitError::Io { path, error }
    };
    for (name, _) in STARTER {
        if dir.join(name).exists() {
            return Err(InitError::Exists(dir.display().to_string(), name));
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, text) in STARTER {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

impl Deployment {
    /// Reads and checks every file of `dir`; all problems found, or the
    /// deployment.
    pub fn load(dir: &Path) -> Result<Deployment, Problems> {
        let mut out = Vec::new();
        let mut texts = BTreeMap::new();
        for (name, _) in STARTER {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => {
                    texts.insert(name, text);
                }
                Err(e) => out.push(Problem {
                    file: name.to_string(),
                    line: 0,
                    message: format!("cannot read it ({e}); `signalbox init DIR` writes a starter"),
                }),
            }
        }
        if !out.is_empty() {
            return Err(Problems(out));
        }
        let src = |name: &'static str| Source {
            name,
            text: texts.get(name).map_or("", String::as_str),
        };
        let server = read_server(dir, &src(SERVER_FILE), &mut out);
        let organization = org::read(&src(ORG_FILE), &mut out);
        let steps = read_steps(&src(STEPS_FILE), organization.as_ref(), &mut out);
        if let (Some(server), Some(org)) = (&server, &organization)
            && let Some(policy) = server.review.as_ref().and_then(|r| r.page.as_ref())
            && !org.world.roster.policies.contains_key(policy)
        {
            let at = src(SERVER_FILE);
            out.push(at.on(
                at.find_line("page", Some(policy)),
                format!("review.page `{policy}` is not an [[escalation]] of {ORG_FILE}"),
            ));
        }
        let playbook = read_playbook(&src(PLAYBOOK_FILE), steps.as_ref(), &mut out);
        // Policies are checked against the playbook even when the steps
        // have problems, and against its bare tables (types and options,
        // data left open) when the playbook itself has some: every
        // stage's problems in one run.
        let bare = match &playbook {
            Some(_) => None,
            None => toml::from_str::<Playbook>(src(PLAYBOOK_FILE).text).ok(),
        };
        let policy = playbook
            .as_ref()
            .or(bare.as_ref())
            .and_then(|playbook| read_policy(&src(POLICY_FILE), playbook, &mut out))
            .filter(|_| bare.is_none());
        let playbook = playbook.filter(|_| steps.is_some());
        match (server, organization, steps, playbook, policy) {
            (Some(server), Some(organization), Some(steps), Some(playbook), Some(policy))
                if out.is_empty() =>
            {
                let mut hash = Sha256::new();
                for name in [ORG_FILE, PLAYBOOK_FILE, STEPS_FILE] {
                    hash.update(src(name).text.as_bytes());
                }
                let version = format!("rules+{}", &hex::encode(hash.finalize())[..8]);
                Ok(Deployment {
                    dir: dir.to_path_buf(),
                    server,
                    organization,
                    rules: Rules {
                        steps: Arc::new(steps),
                        playbook: Arc::new(playbook),
                        policy: Arc::new(policy),
                        version,
                    },
                })
            }
            _ => Err(Problems(out)),
        }
    }

    /// Webhook executors, by name.
    pub fn webhooks(&self) -> BTreeMap<String, String> {
        self.organization
            .executors
            .iter()
            .filter_map(|(name, kind)| match kind {
                ExecutorKind::Webhook(url) => Some((name.clone(), url.clone())),
                ExecutorKind::Manual => None,
            })
            .collect()
    }

    /// Where the journal and the intake log are.
    pub fn data_dir(&self) -> PathBuf {
        self.server
            .data_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("data"))
    }

    /// What differs from `older`, for the journal and the status line.
    pub fn summary_against(&self, older: &Deployment) -> String {
        let mut parts = Vec::new();
        if self.rules.policy.version != older.rules.policy.version {
            parts.push(format!(
                "policy {} → {}",
                older.rules.policy.version, self.rules.policy.version
            ));
        }
        if self.rules.version != older.rules.version {
            parts.push(format!(
                "rules {} → {}",
                older.rules.version, self.rules.version
            ));
        }
        let count = |d: &Deployment| {
            (
                d.rules.playbook.signals.len(),
                d.rules.steps.steps.len(),
                d.organization.world.teams.len(),
                d.organization.world.agents.len(),
            )
        };
        let (a, b) = (count(older), count(self));
        if a != b {
            parts.push(format!(
                "signal types {}→{}, steps {}→{}, teams {}→{}, agents {}→{}",
                a.0, b.0, a.1, b.1, a.2, b.2, a.3, b.3
            ));
        }
        if parts.is_empty() {
            "no change".into()
        } else {
            parts.join("; ")
        }
    }
}

fn read_server(dir: &Path, src: &Source<'_>, out: &mut Vec<Problem>) -> Option<Config> {
    let mut server: Config = match toml::from_str(src.text) {
        Ok(c) => c,
        Err(e) => {
            out.push(src.toml(&e));
            return None;
        }
    };
    let before = out.len();
    let at = |e: &crate::config::ConfigError| match e {
        crate::config::ConfigError::Field { field, .. } => match field.split_once('.') {
            Some((table, key)) => src.find_key(table, key),
            None => src.find_line(field, None),
        },
        crate::config::ConfigError::Read { .. } => 0,
    };
    if let Err(e) = server.http_limits() {
        out.push(src.on(at(&e), e.to_string()));
    }
    if let Err(e) = server.execution_durations() {
        out.push(src.on(at(&e), e.to_string()));
    }
    if let Err(e) = server.claim_expiry() {
        out.push(src.on(at(&e), e.to_string()));
    }
    // Tokens are checked here as `serve` would, at their line (the
    // message names the token by position, never by its secret).
    if let Err(e) = crate::intake::auth::Tokens::parse(&server.tokens) {
        let line = server
            .tokens
            .get(e.which.saturating_sub(1))
            .and_then(|spec| {
                src.text
                    .lines()
                    .position(|l| l.contains(&format!("{spec:?}")))
            })
            .map_or_else(|| src.find_line("tokens", None), |i| i + 1);
        out.push(src.on(line, format!("tokens: {e}")));
    }
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    server.data_dir = Some(absolute(
        server.data_dir.as_deref().unwrap_or(Path::new("data")),
    ));
    if let Some(tls) = &mut server.tls
        && let Some(ca) = &tls.ca_file
    {
        let path = absolute(ca);
        if let Err(e) = crate::outbound::read_ca(&path) {
            out.push(src.on(src.find_line("tls", None), e.to_string()));
        }
        tls.ca_file = Some(path);
    }
    if let Some(smtp) = &server.smtp
        && let Err(e) = smtp.check()
    {
        out.push(src.on(src.find_line("smtp", None), e));
    }
    if let Some(pd) = &server.pagerduty
        && !reqwest::Url::parse(&pd.events_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        out.push(src.on(
            src.find_line("events_url", None),
            format!(
                "pagerduty.events_url {:?} is not an http(s) URL",
                pd.events_url
            ),
        ));
    }
    for n in &server.notify {
        if let Err(e) = n.check() {
            out.push(src.on(src.find_line(&n.name, None), e.to_string()));
        }
    }
    (out.len() == before).then_some(server)
}

/// Steps, with `manual` executors turned into tasks for people, and every
/// team, executor and skill they name checked against the organization.
fn read_steps(
    src: &Source<'_>,
    org: Option<&Organization>,
    out: &mut Vec<Problem>,
) -> Option<StepCatalogue> {
    if let Err(e) = toml::from_str::<StepCatalogue>(src.text) {
        out.push(src.toml(&e));
        return None;
    }
    let mut steps = match StepCatalogue::parse(src.text, src.name) {
        Ok(s) => s,
        Err(e) => {
            out.push(catalogue_problem(src, &e));
            return None;
        }
    };
    // Without an organization, the steps' own problems are still found.
    let Some(org) = org else {
        return Some(steps);
    };
    let before = out.len();
    let world = &org.world;
    for (name, step) in &mut steps.steps {
        if let Some(team) = &step.team
            && !world.teams.iter().any(|t| &t.id == team)
        {
            out.push(src.on(
                src.find_line(name, Some(team)),
                format!("step `{name}`: team `{team}` is not a [[team]] of {ORG_FILE}"),
            ));
        }
        let in_team = |t: &str| step.team.as_deref().is_none_or(|want| want == t);
        let staffed = world
            .teams
            .iter()
            .any(|t| in_team(&t.id) && t.skills.contains(&step.skill))
            || world
                .agents
                .iter()
                .any(|a| in_team(&a.team) && a.skills.contains(&step.skill));
        if !staffed {
            out.push(src.on(
                src.find_line(name, Some(&step.skill)),
                format!("step `{name}`: no team or agent has skill `{}`", step.skill),
            ));
        }
        if let Some(executor) = step.automation.clone() {
            match org.executors.get(&executor) {
                None => out.push(src.on(
                    src.find_line(name, Some(&executor)),
                    format!(
                        "step `{name}`: executor `{executor}` is not in [executors] of {ORG_FILE}"
                    ),
                )),
                // A manual executor's steps are people's tasks from the start.
                Some(ExecutorKind::Manual) => step.automation = None,
                Some(ExecutorKind::Webhook(_)) => {}
            }
        }
        if let Some(policy) = &step.page
            && !world.roster.policies.contains_key(policy)
        {
            out.push(src.on(
                src.find_line(name, Some(policy)),
                format!("step `{name}`: page `{policy}` is not an [[escalation]] of {ORG_FILE}"),
            ));
        }
        for (field, path) in &step.carries {
            if let Err(e) = crate::flow::assemble::check_path(path) {
                out.push(src.on(
                    src.find_line(name, Some(path)),
                    format!("step `{name}`: carries.{field}: {e}"),
                ));
            }
        }
    }
    (out.len() == before).then_some(steps)
}

/// The playbook; with no steps (their file has problems), read alone so
/// that the policies can still be checked against it.
fn read_playbook(
    src: &Source<'_>,
    steps: Option<&StepCatalogue>,
    out: &mut Vec<Problem>,
) -> Option<Playbook> {
    if let Err(e) = toml::from_str::<Playbook>(src.text) {
        out.push(src.toml(&e));
        return None;
    }
    let parsed = match steps {
        Some(steps) => Playbook::parse(src.text, src.name, steps),
        None => Playbook::parse_alone(src.text, src.name),
    };
    match parsed {
        Ok(p) => Some(p),
        Err(e) => {
            out.push(catalogue_problem(src, &e));
            None
        }
    }
}

fn read_policy(src: &Source<'_>, playbook: &Playbook, out: &mut Vec<Problem>) -> Option<PolicySet> {
    match PolicySet::parse_all(src.text, src.name, playbook) {
        Ok(p) => Some(p),
        Err(errors) => {
            out.extend(errors.iter().map(|e| policy_problem(src, e)));
            None
        }
    }
}

/// A TOML error's line, from its text ("TOML parse error at line 3, column 1").
fn toml_line(error: &str) -> usize {
    error
        .split("at line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The last line of a TOML error's text: what is wrong, without the excerpt.
fn toml_message(error: &str) -> String {
    error
        .trim()
        .lines()
        .last()
        .unwrap_or(error)
        .trim()
        .to_string()
}

fn catalogue_problem(src: &Source<'_>, e: &CatalogueError) -> Problem {
    match e {
        CatalogueError::Parse { error, .. } => src.on(toml_line(error), toml_message(error)),
        CatalogueError::Reference { item, missing, .. } => src.on(
            src.find_line(item, Some(missing)),
            format!("`{item}` refers to `{missing}`, which is not defined"),
        ),
        CatalogueError::Invalid { item, reason, .. } => {
            // "TYPE update N ..." points into the type's table.
            let table = item.split(" update ").next().unwrap_or(item);
            src.on(src.find_line(table, None), format!("`{item}`: {reason}"))
        }
    }
}

fn policy_problem(src: &Source<'_>, e: &PolicyError) -> Problem {
    match e {
        PolicyError::Io { error, .. } => src.on(0, error.clone()),
        PolicyError::Parse { error, .. } => src.on(toml_line(error), toml_message(error)),
        PolicyError::Cel { rule, error, .. } => {
            let at = src.find_line(rule, None);
            let when = src
                .text
                .lines()
                .enumerate()
                .skip(at)
                .find(|(_, l)| l.trim_start().starts_with("when"))
                .map_or(at, |(i, _)| i + 1);
            src.on(when, format!("rule `{rule}`: CEL {}", first_line(error)))
        }
        PolicyError::Rule { rule, error, .. } => {
            src.on(src.find_line(rule, None), format!("rule `{rule}`: {error}"))
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let d = Deployment::load(dir.path()).unwrap_or_else(|p| panic!("{p}"));
        assert!(d.rules.playbook.play("ticket.opened").is_some());
        assert!(d.rules.version.starts_with("rules+"));
        assert!(matches!(init(dir.path()), Err(InitError::Exists(..))));
    }

    #[test]
    fn toml_lines_are_read_from_the_message() {
        assert_eq!(toml_line("TOML parse error at line 3, column 1\n  |\n"), 3);
        assert_eq!(toml_line("nothing"), 0);
    }
}
