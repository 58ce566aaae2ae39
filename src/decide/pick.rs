//! Picking among the ranked options: what every option forbidden, a forced
//! option, rules only, or the model's confidence make of them, and whether
//! the engine acts alone or asks a person.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::policy::{PolicySet, Verdict};
use super::{Choice, Mode, OptionScore};

/// What was picked, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub proposal: String,
    pub confidence: f64,
    pub margin: f64,
    pub mode: Mode,
    pub why: String,
    pub explored: bool,
    /// The chance this pick had (below 1 where the engine explores).
    pub propensity: f64,
    /// How often a pick like this one explores: the chance of taking an
    /// allowed option at random instead of the best (0 where it never does:
    /// forced, rules alone, for a person, or not confident).
    pub spread: f64,
}

impl Pick {
    fn plain(proposal: String, confidence: f64, margin: f64, mode: Mode, why: String) -> Pick {
        Pick {
            proposal,
            confidence,
            margin,
            mode,
            why,
            explored: false,
            propensity: 1.0,
            spread: 0.0,
        }
    }
}

/// The options as scored and filtered, with what policy said of them.
pub struct Ranked<'a> {
    /// In the playbook's order.
    pub options: &'a [OptionScore],
    pub choice: &'a Choice<'a>,
    pub verdict: &'a Verdict,
    pub policy: &'a PolicySet,
    /// The confidence the model needs to act alone on this class.
    pub threshold: f64,
}

/// The randomness a learning engine explores with (the model's scores and
/// evidence are in the options).
pub struct Learner<'a> {
    pub rng: &'a mut ChaCha8Rng,
    /// Explores as policy says; off for a shadow candidate, which gives its
    /// best (and leaves `rng` untouched).
    pub explore: bool,
}

impl Ranked<'_> {
    /// Indices of the options policy allows.
    fn allowed(&self) -> Vec<usize> {
        (0..self.options.len())
            .filter(|&i| self.options[i].allowed)
            .collect()
    }

    pub fn pick(&self, learner: Option<Learner<'_>>) -> Pick {
        let allowed = self.allowed();
        let forced = self
            .verdict
            .forced
            .as_ref()
            .filter(|f| self.options.iter().any(|o| &o.option == *f && o.allowed));
        if allowed.is_empty() {
            return Pick::plain(
                self.choice.safe_default.to_string(),
                0.0,
                0.0,
                Mode::Review,
                "every option is forbidden by policy; a person must choose".to_string(),
            );
        }
        if let Some(forced) = forced {
            return self.forced(forced);
        }
        match learner {
            None => self.rules_only(&allowed),
            Some(learner) => self.learned(&allowed, learner),
        }
    }

    fn forced(&self, forced: &str) -> Pick {
        let confidence = self
            .options
            .iter()
            .find(|o| o.option == forced)
            .map_or(0.0, |o| o.score);
        let mode = if self.verdict.require_review {
            Mode::Review
        } else {
            Mode::Forced
        };
        Pick::plain(
            forced.to_string(),
            confidence,
            1.0,
            mode,
            format!("forced by policy to `{forced}`"),
        )
    }

    fn rules_only(&self, allowed: &[usize]) -> Pick {
        let default_allowed = self
            .options
            .iter()
            .any(|o| o.option == self.choice.default && o.allowed);
        let proposal = if default_allowed {
            self.choice.default.to_string()
        } else {
            self.options[allowed[0]].option.clone()
        };
        let mode = if self.verdict.require_review || self.choice.unrecognised {
            Mode::Review
        } else {
            Mode::Rules
        };
        Pick::plain(
            proposal,
            1.0,
            1.0,
            mode,
            "rules only: playbook default".to_string(),
        )
    }

    /// The best allowed option by score; ties go to the playbook default,
    /// then to catalogue order, so a cold model proposes what the rules
    /// would. With the runner-up's score.
    fn best(&self, allowed: &[usize]) -> (usize, f64) {
        let options = self.options;
        let default = self.choice.default;
        let best = allowed
            .iter()
            .copied()
            .max_by(|&a, &b| {
                let (sa, sb) = (options[a].score, options[b].score);
                sa.total_cmp(&sb)
                    .then_with(|| {
                        (options[a].option == default).cmp(&(options[b].option == default))
                    })
                    .then_with(|| b.cmp(&a))
            })
            .unwrap_or(allowed[0]);
        let runner_up = allowed
            .iter()
            .copied()
            .filter(|&i| i != best)
            .map(|i| options[i].score)
            .fold(f64::NEG_INFINITY, f64::max);
        (best, runner_up)
    }

    fn learned(&self, allowed: &[usize], learner: Learner<'_>) -> Pick {
        let (policy, verdict, choice) = (self.policy, self.verdict, self.choice);
        let threshold = self.threshold;
        let (best, runner_up) = self.best(allowed);
        let best_score = self.options[best].score;
        let margin = if runner_up.is_finite() {
            best_score - runner_up
        } else {
            1.0
        };
        // A record journaled before options kept their evidence was acted
        // on as it was: taken as seasoned.
        let evidence = self.options[best].evidence.unwrap_or(f64::INFINITY);
        let seasoned = evidence >= policy.min_evidence;
        let confident = seasoned && best_score >= threshold && margin >= policy.min_margin;
        let (mut pick, mut explored, mut propensity) = (best, false, 1.0);
        // Explore only where the engine would act on its own anyway: an
        // item going to a person shows the model's best guess.
        let explorable =
            confident && !verdict.require_review && !choice.unrecognised && allowed.len() > 1;
        let spread = if explorable { policy.explore } else { 0.0 };
        if learner.explore && explorable {
            let k = allowed.len() as f64;
            let epsilon = policy.explore;
            if learner.rng.random::<f64>() < epsilon {
                pick = allowed[learner.rng.random_range(0..allowed.len())];
            }
            explored = pick != best;
            propensity = if pick == best {
                1.0 - epsilon + epsilon / k
            } else {
                epsilon / k
            };
        }
        let (mode, why) = if choice.unrecognised {
            (
                Mode::Review,
                "unrecognised signal type: a person must look".to_string(),
            )
        } else if verdict.require_review {
            (Mode::Review, "policy requires review".to_string())
        } else if explored {
            (
                Mode::Auto,
                format!("exploring (propensity {propensity:.3})"),
            )
        } else if confident {
            (
                Mode::Auto,
                format!("confidence {best_score:.2} ≥ {threshold:.2}, margin {margin:.2}"),
            )
        } else if !seasoned {
            (
                Mode::Review,
                format!(
                    "only {evidence:.0} labelled examples for `{}` (needs {:.0} before acting alone)",
                    self.options[best].option, policy.min_evidence
                ),
            )
        } else {
            (
                Mode::Review,
                format!(
                    "confidence {best_score:.2} below {threshold:.2} or margin {margin:.2} below {:.2}",
                    policy.min_margin
                ),
            )
        };
        Pick {
            proposal: self.options[pick].option.clone(),
            confidence: self.options[pick].score,
            margin,
            mode,
            why,
            explored,
            propensity,
            spread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
    use crate::playbook::{DEFAULT_PLAYBOOK, Playbook};
    use chrono::Duration;
    use rand::SeedableRng;

    fn policy() -> PolicySet {
        let steps = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
        let playbook = Playbook::parse(DEFAULT_PLAYBOOK, "playbook", &steps).unwrap();
        PolicySet::default_set(&playbook).unwrap()
    }

    fn option(name: &str, score: f64, allowed: bool) -> OptionScore {
        OptionScore {
            option: name.into(),
            score,
            allowed,
            forbidden_by: if allowed { vec![] } else { vec!["rule".into()] },
            evidence: None,
        }
    }

    fn names() -> Vec<String> {
        vec!["ship".into(), "hold".into(), "expedite".into()]
    }

    fn choice(names: &[String], unrecognised: bool) -> Choice<'_> {
        Choice {
            class: "fulfillment",
            options: names,
            default: "hold",
            safe_default: "hold",
            sla: Duration::hours(4),
            review_window: Duration::minutes(30),
            unrecognised,
            records: false,
            due: None,
        }
    }

    fn pick_with(
        options: &[OptionScore],
        choice: &Choice<'_>,
        verdict: &Verdict,
        evidence: Option<f64>,
    ) -> Pick {
        let policy = policy();
        // Learning: every option with this much evidence.
        let options: Vec<OptionScore> = options
            .iter()
            .map(|o| OptionScore {
                evidence,
                ..o.clone()
            })
            .collect();
        let options = &options[..];
        let ranked = Ranked {
            options,
            choice,
            verdict,
            policy: &policy,
            threshold: 0.7,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        ranked.pick(evidence.map(|_| Learner {
            explore: true,
            rng: &mut rng,
        }))
    }

    /// Enough labelled examples of every option to act alone, or none.
    const SEASONED: Option<f64> = Some(1_000.0);
    const COLD: Option<f64> = Some(0.0);

    #[test]
    fn every_option_forbidden_goes_to_a_person_with_the_safe_default() {
        let names = names();
        let options = [option("ship", 0.9, false), option("hold", 0.1, false)];
        let p = pick_with(&options, &choice(&names, false), &Verdict::default(), None);
        assert_eq!((p.proposal.as_str(), p.mode), ("hold", Mode::Review));
    }

    #[test]
    fn a_forced_option_is_taken_unless_review_is_required() {
        let names = names();
        let options = [option("ship", 0.2, true), option("expedite", 0.4, true)];
        let mut verdict = Verdict {
            forced: Some("expedite".into()),
            ..Verdict::default()
        };
        let p = pick_with(&options, &choice(&names, false), &verdict, None);
        assert_eq!((p.proposal.as_str(), p.mode), ("expedite", Mode::Forced));
        assert_eq!(p.confidence, 0.4);
        verdict.require_review = true;
        let p = pick_with(&options, &choice(&names, false), &verdict, None);
        assert_eq!(p.mode, Mode::Review);
        // Forced to a forbidden option: not forced at all.
        let options = [option("ship", 0.2, true), option("expedite", 0.4, false)];
        let verdict = Verdict {
            forced: Some("expedite".into()),
            ..Verdict::default()
        };
        let p = pick_with(&options, &choice(&names, false), &verdict, None);
        assert_eq!(p.mode, Mode::Rules);
    }

    #[test]
    fn rules_only_take_the_default_or_the_first_allowed() {
        let names = names();
        let options = [option("ship", 0.9, true), option("hold", 0.1, true)];
        let p = pick_with(&options, &choice(&names, false), &Verdict::default(), None);
        assert_eq!((p.proposal.as_str(), p.mode), ("hold", Mode::Rules));
        let options = [option("ship", 0.9, true), option("hold", 0.1, false)];
        let p = pick_with(&options, &choice(&names, false), &Verdict::default(), None);
        assert_eq!(p.proposal, "ship");
        let p = pick_with(&options, &choice(&names, true), &Verdict::default(), None);
        assert_eq!(
            p.mode,
            Mode::Review,
            "an unrecognised type always goes to a person"
        );
    }

    #[test]
    fn the_model_acts_alone_only_when_seasoned_confident_and_clear() {
        let names = names();
        let options = [option("ship", 0.95, true), option("hold", 0.10, true)];
        let p = pick_with(&options, &choice(&names, false), &Verdict::default(), COLD);
        assert_eq!((p.proposal.as_str(), p.mode), ("ship", Mode::Review));
        assert!(p.why.contains("labelled examples"), "{}", p.why);

        let p = pick_with(
            &options,
            &choice(&names, false),
            &Verdict::default(),
            SEASONED,
        );
        assert_eq!(p.mode, Mode::Auto, "{}", p.why);
        assert!(p.propensity < 1.0, "a confident pick may explore");

        let close = [option("ship", 0.80, true), option("hold", 0.79, true)];
        let p = pick_with(
            &close,
            &choice(&names, false),
            &Verdict::default(),
            SEASONED,
        );
        assert_eq!((p.mode, p.propensity), (Mode::Review, 1.0), "{}", p.why);

        let low = [option("ship", 0.5, true), option("hold", 0.1, true)];
        let p = pick_with(&low, &choice(&names, false), &Verdict::default(), SEASONED);
        assert_eq!(p.mode, Mode::Review, "{}", p.why);
    }

    #[test]
    fn ties_go_to_the_playbook_default() {
        let names = names();
        let options = [option("ship", 0.5, true), option("hold", 0.5, true)];
        let p = pick_with(&options, &choice(&names, false), &Verdict::default(), COLD);
        assert_eq!(p.proposal, "hold");
        assert_eq!(p.margin, 0.0);
    }
}
