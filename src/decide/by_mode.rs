//! Who picks, as a class's model mode says (`apprentice::ModelMode`): the
//! model (exploring), or the rules, held by the model's breaker, in `rules`
//! mode or apprenticing; and while the rules hold an apprentice class, the
//! model's pick tried in their place now and then (a trial).

use rand::Rng;

use super::{Decider, Mode, ModelMode, apprentice, pick};

impl Decider {
    /// Who picks as the class's model mode says (`apprentice`): the model
    /// (exploring), or the rules while the model is held by its breaker, in
    /// `rules` mode, or apprenticing; in an apprentice class, with what the
    /// side not deciding would pick.
    pub(super) fn pick_by_mode(
        &mut self,
        ranked: &pick::Ranked<'_>,
        class: &str,
    ) -> (pick::Pick, Option<apprentice::ApprenticeMark>) {
        let mode = self.policy.model_mode(class);
        let rules_decide = match mode {
            ModelMode::Rules => true,
            ModelMode::Apprentice => self.apprentice.deciding(class) == apprentice::Side::Rules,
            ModelMode::On => false,
        };
        let held = self.learning && (self.model_held || rules_decide);
        let learner = (self.learning && !held).then_some(pick::Learner {
            rng: &mut self.rng,
            explore: true,
        });
        let mut pick = ranked.pick(learner);
        // In an apprentice class, what the side not deciding would pick.
        let apprentice =
            (self.learning && !self.model_held && mode == ModelMode::Apprentice).then(|| {
                let (by, other, instead_of) = if rules_decide {
                    let model = ranked.pick(Some(pick::Learner {
                        rng: &mut self.rng,
                        explore: false,
                    }));
                    let instead_of = self.trial(&mut pick, &model, ranked.policy.explore);
                    (apprentice::Side::Rules, model.proposal, instead_of)
                } else {
                    (apprentice::Side::Model, ranked.pick(None).proposal, None)
                };
                apprentice::ApprenticeMark {
                    by,
                    other,
                    instead_of,
                }
            });
        if pick.explored && rules_decide {
            return (pick, apprentice);
        }
        if self.learning && self.model_held {
            pick.why = format!("model breaker open, {}", pick.why);
        } else if held {
            let model = apprentice.as_ref().map_or("", |a| a.other.as_str());
            pick.why = match mode {
                ModelMode::Rules => format!("model mode rules, {}", pick.why),
                _ => format!(
                    "apprentice, the rules decide (the model would take `{model}`): {}",
                    pick.why
                ),
            };
        }
        (pick, apprentice)
    }

    /// While the rules hold an apprentice class: where the model would
    /// take another option than the rules' own, acting alone or asking a
    /// person (and the rules' pick is neither forced nor for a person),
    /// the model's pick is tried in their place at the policy's
    /// exploration rate. Without these trials every pick of the model's
    /// that differs from the rules' is one nobody tried, and the takeover
    /// estimate can only take the model's word for it: an option the
    /// rules take only on open escalations looked as good everywhere else.
    /// With them, the estimate weighs each trial's outcome by its chance,
    /// and the model learns from it. Returns the rules' pick when the
    /// model's was tried in its place.
    fn trial(&mut self, pick: &mut pick::Pick, model: &pick::Pick, rate: f64) -> Option<String> {
        if pick.mode != Mode::Rules
            || !matches!(model.mode, Mode::Auto | Mode::Review)
            || model.proposal == pick.proposal
            || rate <= 0.0
        {
            return None;
        }
        if self.rng.random::<f64>() >= rate {
            pick.propensity = 1.0 - rate;
            return None;
        }
        let rules = pick.proposal.clone();
        *pick = pick::Pick {
            why: format!(
                "apprentice trial (propensity {rate:.3}): the model's pick in place of the rules' `{}`; {}",
                pick.proposal, model.why
            ),
            explored: true,
            propensity: rate,
            spread: 0.0,
            ..model.clone()
        };
        Some(rules)
    }
}
