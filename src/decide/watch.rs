//! A breaker on the model: its calibration (how far its predicted chance of
//! success is from what the labels say, over the latest labelled examples,
//! each predicted before it was learned) and its agreement with people
//! (whether its best allowed option was what a person chose, over the
//! latest approvals and overrides). Past a threshold on either it opens:
//! decisions fall back to rules alone, with review where policy asks, while
//! the model goes on scoring and learning beside them. It closes once the
//! readings taken since it opened are back within bounds. Pure: the engine
//! feeds it readings and journals what it says.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the breaker trips and closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchLimits {
    /// Labelled examples the calibration is read over.
    pub calibration_window: usize,
    /// People's answers the agreement is read over.
    pub agreement_window: usize,
    /// Opens past this calibration error (`calibration_error`).
    pub max_error: f64,
    /// Opens under this share of people's answers that were the model's
    /// best option.
    pub min_agreement: f64,
    /// Closes only once the calibration error is under this and the agreement over
    /// `close_agreement`, both read over readings taken since it opened.
    pub close_error: f64,
    pub close_agreement: f64,
}

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            // Over 24 h of Northwind (seeds 1–3) a sound model reads a
            // calibration error of 0.02–0.14 and an agreement of 0.29–0.81.
            calibration_window: 200,
            agreement_window: 100,
            max_error: 0.25,
            min_agreement: 0.15,
            close_error: 0.15,
            close_agreement: 0.3,
        }
    }
}

/// What the breaker read last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Readings {
    /// The expected calibration error (`calibration_error`), once the
    /// window is full.
    pub calibration_error: Option<f64>,
    /// Share of people's answers that were the model's best option, once
    /// the window is full.
    pub agreement: Option<f64>,
}

/// Open or closed, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerState {
    pub open: bool,
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub since: DateTime<Utc>,
    /// Why it opened or closed, in a sentence.
    pub reason: String,
    /// Times it has opened.
    pub trips: u32,
}

/// A change of state, to journal and announce.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: BreakerState,
    pub readings: Readings,
}

/// The model's readings and the breaker's state.
#[derive(Debug, Clone)]
pub struct ModelWatch {
    pub limits: WatchLimits,
    /// (importance, predicted, label), newest last.
    calibration: VecDeque<(f64, f64, f64)>,
    agreement: VecDeque<bool>,
    pub state: Option<BreakerState>,
}

impl ModelWatch {
    pub fn new(limits: WatchLimits) -> ModelWatch {
        ModelWatch {
            limits,
            calibration: VecDeque::new(),
            agreement: VecDeque::new(),
            state: None,
        }
    }

    /// Starts from a journaled state (after a restart); the readings start
    /// afresh, so an open breaker waits for new ones to close.
    pub fn resume(&mut self, state: BreakerState) {
        self.state = Some(state);
        self.calibration.clear();
        self.agreement.clear();
    }

    pub fn is_open(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.open)
    }

    /// A labelled example: the chance the model gave it before learning it.
    pub fn labelled(
        &mut self,
        predicted: f64,
        label: f64,
        importance: f64,
        now: DateTime<Utc>,
    ) -> Option<Transition> {
        if !(predicted.is_finite() && label.is_finite() && importance > 0.0) {
            return None;
        }
        self.calibration.push_back((importance, predicted, label));
        if self.calibration.len() > self.limits.calibration_window {
            self.calibration.pop_front();
        }
        self.check(now)
    }

    /// A person's approval or override: whether they chose the model's best
    /// allowed option.
    pub fn answered(&mut self, agreed: bool, now: DateTime<Utc>) -> Option<Transition> {
        self.agreement.push_back(agreed);
        if self.agreement.len() > self.limits.agreement_window {
            self.agreement.pop_front();
        }
        self.check(now)
    }

    pub fn readings(&self) -> Readings {
        let error = (self.calibration.len() >= self.limits.calibration_window)
            .then(|| calibration_error(&self.calibration));
        let agreement = (self.agreement.len() >= self.limits.agreement_window).then(|| {
            self.agreement.iter().filter(|a| **a).count() as f64 / self.agreement.len() as f64
        });
        Readings {
            calibration_error: error,
            agreement,
        }
    }

    fn check(&mut self, now: DateTime<Utc>) -> Option<Transition> {
        let readings = self.readings();
        let limits = &self.limits;
        let trips = self.state.as_ref().map_or(0, |s| s.trips);
        let next = if self.is_open() {
            let (error, agreement) = (readings.calibration_error?, readings.agreement?);
            (error < limits.close_error && agreement >= limits.close_agreement).then(|| {
                BreakerState {
                    open: false,
                    since: now,
                    reason: format!(
                        "the model recovered: calibration error {error:.2} (closes under {:.2}), \
                         agreement with people {:.0} % (closes from {:.0} %)",
                        limits.close_error,
                        agreement * 100.0,
                        limits.close_agreement * 100.0
                    ),
                    trips,
                }
            })
        } else {
            let miscalibrated = readings
                .calibration_error
                .filter(|e| *e > limits.max_error)
                .map(|e| {
                    format!(
                        "calibration error {e:.2} over the last {} labelled examples (limit {:.2})",
                        limits.calibration_window, limits.max_error
                    )
                });
            let disagreeing = readings
                .agreement
                .filter(|a| *a < limits.min_agreement)
                .map(|a| {
                    format!(
                        "agreement with people {:.0} % over the last {} answers (limit {:.0} %)",
                        a * 100.0,
                        limits.agreement_window,
                        limits.min_agreement * 100.0
                    )
                });
            let why: Vec<String> = miscalibrated.into_iter().chain(disagreeing).collect();
            (!why.is_empty()).then(|| BreakerState {
                open: true,
                since: now,
                reason: format!("the model is off: {}", why.join("; ")),
                trips: trips + 1,
            })
        }?;
        // What it reads from here on is what closes it (or opens it again).
        self.calibration.clear();
        self.agreement.clear();
        self.state = Some(next.clone());
        Some(Transition {
            state: next,
            readings,
        })
    }
}

/// Bins of predicted chance the calibration error is read over.
const BINS: usize = 10;

/// The expected calibration error: the predictions in ten bins of
/// predicted chance, and in each the gap between the mean prediction and
/// the mean label, weighted by the bin's share (all weighted by importance).
/// A model whose 0.9s succeed nine times in ten reads near 0; one that says
/// 0.9 where things fail reads near 0.9.
fn calibration_error(examples: &VecDeque<(f64, f64, f64)>) -> f64 {
    let mut bins = [(0.0, 0.0, 0.0); BINS];
    for &(w, p, y) in examples {
        let slot = ((p.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
        let b = &mut bins[slot];
        *b = (b.0 + w, b.1 + w * p, b.2 + w * y);
    }
    let total: f64 = bins.iter().map(|b| b.0).sum();
    if total <= 0.0 {
        return 0.0;
    }
    bins.iter().map(|(_, p, y)| (p - y).abs()).sum::<f64>() / total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> ModelWatch {
        ModelWatch::new(WatchLimits {
            calibration_window: 10,
            agreement_window: 4,
            ..WatchLimits::default()
        })
    }

    #[test]
    fn a_calibrated_model_that_people_agree_with_stays_closed() {
        let mut w = watch();
        let now = crate::testkit::at(0);
        for i in 0..100 {
            let label = f64::from(i % 5 != 0);
            assert_eq!(w.labelled(0.8, label, 1.0, now), None);
            assert_eq!(w.answered(i % 2 == 0, now), None);
        }
        assert!(!w.is_open());
        let r = w.readings();
        assert!(r.calibration_error.unwrap() < 0.05, "{r:?}");
    }

    #[test]
    fn an_overconfident_model_opens_it_and_a_recovered_one_closes_it() {
        let mut w = watch();
        let now = crate::testkit::at(0);
        let mut opened = None;
        for _ in 0..10 {
            opened = opened.or(w.labelled(0.95, 0.0, 1.0, now));
        }
        let t = opened.expect("opens once the window is full");
        assert!(t.state.open && t.state.trips == 1);
        assert!(
            t.state.reason.contains("calibration error 0.95"),
            "{}",
            t.state.reason
        );
        // Calibrated again, but nobody has answered since: still open.
        for _ in 0..10 {
            assert_eq!(w.labelled(0.5, 0.5, 1.0, now), None);
        }
        assert!(w.is_open());
        let closed = (0..4).find_map(|_| w.answered(true, now)).expect("closes");
        assert!(!closed.state.open && closed.state.trips == 1);
    }

    #[test]
    fn a_model_people_never_agree_with_opens_it() {
        let mut w = watch();
        let now = crate::testkit::at(0);
        let t = (0..4).find_map(|_| w.answered(false, now)).expect("opens");
        assert!(
            t.state.reason.contains("agreement with people 0 %"),
            "{}",
            t.state.reason
        );
    }

    #[test]
    fn readings_that_are_not_numbers_are_not_taken() {
        let mut w = watch();
        let now = crate::testkit::at(0);
        for _ in 0..20 {
            assert_eq!(w.labelled(f64::NAN, 1.0, 1.0, now), None);
            assert_eq!(w.labelled(0.5, 1.0, 0.0, now), None);
        }
        assert_eq!(w.readings().calibration_error, None);
    }
}
