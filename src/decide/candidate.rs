//! A candidate beside the live rules: its own policies, playbook and model,
//! each the live one where it has none. The shadow holds one and a ramp's
//! candidate arm holds one; they are named on the command line by one set
//! of flags (`CandidateFiles`, shared by `run`, `serve` and the console)
//! and loaded here. A new kind of candidate is a field of both and its
//! loading, in this file, and its use, in `decide`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::model::{Checkpoint, Model};
use super::policy::{PolicyError, PolicySet};
use super::{OptionViews, Rules};
use crate::CatalogueError;
use crate::playbook::Playbook;

/// Where a shadow candidate and a guarded ramp are read from.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct CandidateFiles {
    /// A candidate policy file deciding every signal beside the live
    /// policies, never acting (shadow mode): its choice is in each decision,
    /// its agreement in /metrics, Overview, `:changes` and the report.
    #[arg(long)]
    pub shadow: Option<PathBuf>,
    /// A candidate model checkpoint (`signalbox model export`) deciding
    /// beside the live model, with the --shadow policy or the live one,
    /// never acting and never learning.
    #[arg(long)]
    pub shadow_model: Option<PathBuf>,
    /// A candidate playbook (its own options per signal type) deciding
    /// beside the live one, with the --shadow policy or the live one, never
    /// acting.
    #[arg(long)]
    pub shadow_playbook: Option<PathBuf>,
    /// A guarded ramp file: its candidate policy takes a growing share of
    /// decisions, gated step by step on overrides, within-SLA and an
    /// off-policy lower bound; started unless that candidate has already
    /// ramped in this journal (a lead answers a pause with `:ramp
    /// advance|extend|rollback` or `POST /v1/ramp/...`).
    #[arg(long)]
    pub ramp: Option<PathBuf>,
}

impl CandidateFiles {
    /// Whether a shadow candidate is named.
    pub fn shadows(&self) -> bool {
        self.shadow.is_some() || self.shadow_model.is_some() || self.shadow_playbook.is_some()
    }
}

/// Why a candidate could not be loaded.
#[derive(Debug, Error)]
pub enum CandidateError {
    #[error(transparent)]
    Playbook(#[from] CatalogueError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{file}: not a model checkpoint: {error}")]
    Checkpoint { file: String, error: String },
}

/// Policies, a playbook and a model deciding beside the live ones; where
/// one is none, the live one takes its place.
#[derive(Debug, Default)]
pub struct Candidate {
    pub policy: Option<Arc<PolicySet>>,
    pub playbook: Option<Arc<Playbook>>,
    /// A checkpoint, as it is: a candidate's model never learns.
    pub model: Option<Model>,
    /// Its playbook's options as policies read them, built once per option.
    pub(super) views: OptionViews,
}

impl Candidate {
    /// A candidate of policies alone (a ramp's).
    pub fn of_policy(policy: Arc<PolicySet>) -> Candidate {
        Candidate {
            policy: Some(policy),
            ..Candidate::default()
        }
    }

    /// The shadow candidate `files` name, read against the live `rules`
    /// (a candidate policy's options are the candidate playbook's, if there
    /// is one); none when they name none.
    pub fn shadow(
        files: &CandidateFiles,
        rules: &Rules,
    ) -> Result<Option<Candidate>, CandidateError> {
        if !files.shadows() {
            return Ok(None);
        }
        let playbook = match &files.shadow_playbook {
            Some(path) => {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| CatalogueError::Parse {
                    file: file.clone(),
                    error: format!("cannot read: {e}"),
                })?;
                Some(Arc::new(Playbook::parse(&text, &file, &rules.steps)?))
            }
            None => None,
        };
        let policy = match &files.shadow {
            Some(path) => Some(PolicySet::load(
                path,
                playbook.as_ref().unwrap_or(&rules.playbook),
            )?),
            None => None,
        };
        let model = files
            .shadow_model
            .as_deref()
            .map(load_checkpoint)
            .transpose()?;
        Ok(Some(Candidate {
            policy,
            playbook,
            model,
            views: OptionViews::new(),
        }))
    }

    /// Forgets the options' views (the live steps changed).
    pub(super) fn forget_views(&mut self) {
        self.views.clear();
    }
}

/// A model checkpoint file (`signalbox model export`), as a model.
pub fn load_checkpoint(path: &Path) -> Result<Model, CandidateError> {
    let bad = |error: String| CandidateError::Checkpoint {
        file: path.display().to_string(),
        error,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    Model::restore(&checkpoint).map_err(|e| bad(e.to_string()))
}
