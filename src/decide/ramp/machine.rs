//! The ramp's state machine: its steps, holding, reading, pausing for a
//! lead, rolling back and promoting, and what each change says.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use super::arms::RampMark;
use super::gates::{StepReading, Verdict, evaluate};
use super::plan::{Gates, RampPlan, covers};
use super::tally::StepTally;

/// A lead's call on a ramp that has ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the ramp {id} is over ({status})")]
pub struct RampOver {
    pub id: String,
    pub status: &'static str,
}

/// Where a ramp stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Holding its step.
    Running,
    /// A gate was inconclusive: the candidate keeps its coverage and a lead
    /// decides.
    Paused,
    Promoted,
    RolledBack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Promoted => "promoted",
            Status::RolledBack => "rolled_back",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Status::Promoted | Status::RolledBack)
    }
}

/// A step as it ended: its reading and what followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub coverage: f64,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    pub reading: StepReading,
    /// advanced, promoted, paused, rolled_back, extended.
    pub then: String,
    /// The gates, or the lead who decided.
    pub by: String,
}

/// A ramp's state: journaled at each change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampState {
    pub id: String,
    pub candidate_file: PathBuf,
    pub candidate_version: String,
    /// The live policy when the ramp started (what a rollback keeps).
    pub live_version: String,
    pub classes: Vec<String>,
    pub steps: Vec<f64>,
    pub hold: u64,
    pub settle_seconds: i64,
    pub gates: Gates,
    /// The step being held (an index into `steps`).
    pub step: usize,
    /// The batch of decisions the step reads (from 1, one per step and
    /// per restart), and when it was full.
    pub batch: u32,
    #[serde(default, serialize_with = "crate::timefmt::option::serialize")]
    pub full: Option<DateTime<Utc>>,
    pub status: Status,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub started: DateTime<Utc>,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub since: DateTime<Utc>,
    /// The last change, in a sentence.
    pub reason: String,
    /// Decisions the current batch holds (grows when a lead extends it).
    pub hold_until: u64,
    pub history: Vec<StepRecord>,
}

impl RampState {
    pub fn coverage(&self) -> f64 {
        self.steps.get(self.step).copied().unwrap_or(1.0)
    }

    pub fn covers(&self, class: &str) -> bool {
        covers(&self.classes, class)
    }
}

/// What a lead may do with a ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadCall {
    /// Take the step as passed: on to the next, or promote after the last.
    Advance,
    /// Hold the step for another `hold` decisions, then read the gates again.
    Extend,
    /// Roll back now.
    RollBack,
}

impl LeadCall {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadCall::Advance => "advance",
            LeadCall::Extend => "extend",
            LeadCall::RollBack => "rollback",
        }
    }

    pub fn parse(text: &str) -> Option<LeadCall> {
        match text {
            "advance" | "continue" | "promote" => Some(LeadCall::Advance),
            "extend" | "hold" => Some(LeadCall::Extend),
            "rollback" | "roll-back" | "abort" => Some(LeadCall::RollBack),
            _ => None,
        }
    }
}

/// A ramp in progress: its state and the current step's tally.
#[derive(Debug, Clone)]
pub struct Ramp {
    pub state: RampState,
    pub tally: StepTally,
}

impl Ramp {
    pub fn new(
        plan: &RampPlan,
        candidate_version: &str,
        live_version: &str,
        now: DateTime<Utc>,
    ) -> Ramp {
        let id = format!(
            "ramp-{}",
            &crate::hash::hex_digest(
                &[candidate_version.as_bytes(), now.to_rfc3339().as_bytes()],
                4
            )
        );
        Ramp {
            state: RampState {
                id,
                candidate_file: plan.candidate.clone(),
                candidate_version: candidate_version.to_string(),
                live_version: live_version.to_string(),
                classes: plan.classes.clone(),
                steps: plan.steps.clone(),
                hold: plan.hold,
                settle_seconds: plan.settle.num_seconds(),
                gates: plan.gates.clone(),
                step: 0,
                batch: 1,
                full: None,
                status: Status::Running,
                started: now,
                since: now,
                reason: format!(
                    "started at {:.0} % of {}",
                    plan.steps.first().copied().unwrap_or(0.0) * 100.0,
                    classes_text(&plan.classes)
                ),
                hold_until: plan.hold,
                history: Vec::new(),
            },
            tally: StepTally::default(),
        }
    }

    /// A ramp journaled before a restart: its step starts a new batch (the
    /// tally of the one before is gone with the process).
    pub fn resume(mut state: RampState) -> Ramp {
        state.hold_until = state.hold;
        state.batch += 1;
        state.full = None;
        Ramp {
            state,
            tally: StepTally::default(),
        }
    }

    /// The batch decisions are read in now: none once it is full (or the
    /// ramp is over).
    pub fn filling(&self) -> Option<u32> {
        let s = &self.state;
        (s.full.is_none() && !s.status.finished()).then_some(s.batch)
    }

    /// Whether the mark is of the batch the current step reads. A step
    /// reads only what was decided in its batch, and only once the batch's
    /// outcomes are in: outcomes arrive late, and later for some actions
    /// than for others (after a person, after a slower option), so the
    /// first outcomes to arrive are not a fair sample of the decisions.
    fn counts(&self, mark: &RampMark) -> bool {
        mark.ramp == self.state.id
            && mark.batch != 0
            && mark.batch == self.state.batch
            && !self.state.status.finished()
    }

    /// A ramped decision; true when it fills the batch (decisions from now
    /// on are marked as between batches).
    pub fn decided(&mut self, mark: &RampMark, now: DateTime<Utc>) -> bool {
        if !self.counts(mark) || self.state.full.is_some() {
            return false;
        }
        self.tally.decided(mark);
        if self.tally.decisions() >= self.state.hold_until {
            self.state.full = Some(now);
            return true;
        }
        false
    }

    pub fn answered(&mut self, mark: &RampMark, overridden: bool) {
        if self.counts(mark) {
            self.tally.answered(mark, overridden);
        }
    }

    /// An outcome; the step's gates are read once its batch is full and
    /// its outcomes are in, and the change they call for is returned.
    pub fn outcome(&mut self, mark: &RampMark, within: bool, now: DateTime<Utc>) -> Option<Status> {
        if !self.counts(mark) {
            return None;
        }
        self.tally.outcome(mark, within);
        self.tick(now)
    }

    /// Reads the gates if the batch's wait is over.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Status> {
        let full = self.state.full?;
        let waited = now - full >= chrono::Duration::seconds(self.state.settle_seconds);
        let all_in = self.tally.settled() >= self.tally.decisions();
        if self.state.status != Status::Running || !(waited || all_in) {
            return None;
        }
        let reading = evaluate(&self.tally, &self.state.gates, self.state.coverage());
        let (then, reason) = match reading.verdict {
            Verdict::Pass => (self.advance_or_promote(), "the gates passed".to_string()),
            Verdict::Fail => (Status::RolledBack, failing(&reading)),
            Verdict::Inconclusive => (Status::Paused, inconclusive(&reading)),
        };
        Some(self.change(then, reading, "gates", reason, now))
    }

    /// A lead's call on the ramp.
    pub fn call(
        &mut self,
        call: LeadCall,
        lead: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Status, RampOver> {
        if self.state.status.finished() {
            return Err(RampOver {
                id: self.state.id.clone(),
                status: self.state.status.as_str(),
            });
        }
        let reading = evaluate(&self.tally, &self.state.gates, self.state.coverage());
        let noted = |what: &str| {
            if note.is_empty() {
                format!("{lead} {what}")
            } else {
                format!("{lead} {what}: {note}")
            }
        };
        let then = match call {
            LeadCall::Advance => self.advance_or_promote(),
            LeadCall::RollBack => Status::RolledBack,
            LeadCall::Extend => {
                self.state.hold_until = self.tally.decisions() + self.state.hold;
                self.state.full = None;
                let reason = noted(&format!(
                    "held the step for another {} decisions",
                    self.state.hold
                ));
                self.record(reading, "extended", lead, now);
                self.state.status = Status::Running;
                self.state.since = now;
                self.state.reason = reason;
                return Ok(Status::Running);
            }
        };
        let what = match then {
            Status::Promoted => "promoted the candidate",
            Status::RolledBack => "rolled the ramp back",
            _ => "advanced the ramp",
        };
        Ok(self.change(then, reading, lead, noted(what), now))
    }

    /// The next step, or promotion after the last.
    fn advance_or_promote(&self) -> Status {
        if self.state.step + 1 < self.state.steps.len() {
            Status::Running
        } else {
            Status::Promoted
        }
    }

    fn change(
        &mut self,
        then: Status,
        reading: StepReading,
        by: &str,
        reason: String,
        now: DateTime<Utc>,
    ) -> Status {
        let label = match then {
            Status::Running => "advanced",
            other => other.as_str(),
        };
        self.record(reading, label, by, now);
        if then == Status::Running {
            self.state.step += 1;
            self.state.batch += 1;
            self.state.full = None;
            self.tally = StepTally::default();
            self.state.hold_until = self.state.hold;
        }
        self.state.status = then;
        self.state.since = now;
        self.state.reason = match then {
            Status::Running => format!("{reason}; now at {:.0} %", self.state.coverage() * 100.0),
            _ => reason,
        };
        then
    }

    fn record(&mut self, reading: StepReading, then: &str, by: &str, now: DateTime<Utc>) {
        self.state.history.push(StepRecord {
            step: self.state.step,
            coverage: self.state.coverage(),
            time: now,
            reading,
            then: then.to_string(),
            by: by.to_string(),
        });
    }
}

/// The classes a ramp covers, for a sentence.
pub fn classes_text(classes: &[String]) -> String {
    if classes.is_empty() {
        "every class".to_string()
    } else {
        format!("class {}", classes.join(", "))
    }
}

fn failing(reading: &StepReading) -> String {
    format!("a gate failed ({})", gates_read(reading, Verdict::Fail))
}

fn inconclusive(reading: &StepReading) -> String {
    format!(
        "inconclusive, a lead decides ({})",
        gates_read(reading, Verdict::Inconclusive)
    )
}

/// The gates of `reading` that read `verdict`, each with why.
fn gates_read(reading: &StepReading, verdict: Verdict) -> String {
    let gates: Vec<String> = reading
        .gates
        .iter()
        .filter(|g| g.verdict == verdict)
        .map(|g| format!("{}: {}", g.gate, g.why))
        .collect();
    gates.join("; ")
}
