//! Off-policy estimates of a candidate's value from what the logging policy
//! did: inverse propensity scoring (IPS), its self-normalised form (SNIPS)
//! and doubly robust (DR), each with a 95 % bootstrap interval, the
//! effective sample size, the largest weight and the support. Pure: the
//! samples come from the journal (`journal::read::logged`) and a candidate
//! replayed over it.
//!
//! The value is the share of outcomes within SLA (the headless report's
//! `within_sla`). When the candidate's choices are not supported by what
//! was logged, or the weights leave too few effective samples, the estimate
//! is marked inconclusive: its number is not to be read as a measurement.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Below this share of decisions where the candidate's choice had a logged
/// probability above zero, an estimate is inconclusive.
pub const MIN_SUPPORT: f64 = 0.95;

/// Below this effective sample size, an estimate is inconclusive.
pub const MIN_ESS: f64 = 100.0;

/// Bootstrap resamples for the interval.
pub const BOOTSTRAP: usize = 200;

/// One logged decision, seen from the candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The probability the logging policy gave the option it executed.
    pub logged_propensity: f64,
    /// The probability the candidate gives that same option.
    pub target: f64,
    /// Whether the option the candidate would take had a logged
    /// probability above zero (a deterministic logged choice supports only
    /// itself).
    pub supported: bool,
    /// The outcome: 1 within SLA, 0 not.
    pub reward: f64,
    /// The reward model's prediction for the executed option, and its
    /// expectation under the candidate (for DR; 0 and 0 make DR into IPS).
    pub predicted_logged: f64,
    pub predicted_target: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    Ips,
    Snips,
    Dr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub estimator: Estimator,
    /// The point estimate; `None` with no samples.
    pub value: Option<f64>,
    /// The 95 % bootstrap interval, `[low, high]`.
    pub ci: Option<[f64; 2]>,
    pub ess: f64,
    pub max_weight: f64,
    pub support: f64,
    pub samples: usize,
    pub inconclusive: bool,
}

fn weight(s: &Sample) -> f64 {
    if s.logged_propensity > 0.0 {
        s.target / s.logged_propensity
    } else {
        0.0
    }
}

/// The estimator's value over `samples` (the ones given by index).
fn point(
    estimator: Estimator,
    samples: &[Sample],
    pick: impl Iterator<Item = usize>,
) -> Option<f64> {
    let (mut n, mut wr, mut w, mut dr) = (0usize, 0.0, 0.0, 0.0);
    for i in pick {
        let s = &samples[i];
        let wi = weight(s);
        n += 1;
        wr += wi * s.reward;
        w += wi;
        dr += s.predicted_target + wi * (s.reward - s.predicted_logged);
    }
    if n == 0 {
        return None;
    }
    match estimator {
        Estimator::Ips => Some(wr / n as f64),
        Estimator::Snips => (w > 0.0).then(|| wr / w),
        Estimator::Dr => Some(dr / n as f64),
    }
}

/// The `q` quantile of sorted values, by the nearest rank (0 with none).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = (sorted.len().saturating_sub(1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// The estimate of the candidate's value, with its interval from
/// `BOOTSTRAP` resamples drawn with `seed`.
pub fn estimate(estimator: Estimator, samples: &[Sample], seed: u64) -> Estimate {
    let n = samples.len();
    let weights: Vec<f64> = samples.iter().map(weight).collect();
    let (sum, sum_sq) = weights
        .iter()
        .fold((0.0, 0.0), |(s, q), w| (s + w, q + w * w));
    let ess = if sum_sq > 0.0 {
        sum * sum / sum_sq
    } else {
        0.0
    };
    let max_weight = weights.iter().copied().fold(0.0, f64::max);
    let support = match n {
        0 => 0.0,
        _ => samples.iter().filter(|s| s.supported).count() as f64 / n as f64,
    };
    let value = point(estimator, samples, 0..n);
    let ci = (n > 0).then(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut values: Vec<f64> = (0..BOOTSTRAP)
            .filter_map(|_| {
                let draw: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
                point(estimator, samples, draw.into_iter())
            })
            .collect();
        values.sort_by(f64::total_cmp);
        (!values.is_empty()).then(|| [quantile(&values, 0.025), quantile(&values, 0.975)])
    });
    Estimate {
        estimator,
        value,
        ci: ci.flatten(),
        ess,
        max_weight,
        support,
        samples: n,
        inconclusive: value.is_none() || support < MIN_SUPPORT || ess < MIN_ESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logging policy that picks two options uniformly; option 0 is within
    /// SLA 80 % of the time, option 1 30 %. The candidate always takes 0.
    fn uniform(n: usize, seed: u64) -> Vec<Sample> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let a = rng.random_range(0..2);
                let p = if a == 0 { 0.8 } else { 0.3 };
                let reward = f64::from(u8::from(rng.random::<f64>() < p));
                Sample {
                    logged_propensity: 0.5,
                    target: if a == 0 { 1.0 } else { 0.0 },
                    supported: true,
                    reward,
                    predicted_logged: p,
                    predicted_target: 0.8,
                }
            })
            .collect()
    }

    #[test]
    fn each_estimator_finds_the_candidates_true_value_within_its_interval() {
        let samples = uniform(20_000, 7);
        for estimator in [Estimator::Ips, Estimator::Snips, Estimator::Dr] {
            let e = estimate(estimator, &samples, 1);
            let v = e.value.unwrap();
            let [low, high] = e.ci.unwrap();
            assert!((v - 0.8).abs() < 0.02, "{estimator:?}: {v}");
            assert!(low <= 0.8 && 0.8 <= high, "{estimator:?}: [{low}, {high}]");
            assert!(!e.inconclusive, "{e:?}");
            assert!(
                (e.ess - 10_000.0).abs() < 300.0,
                "half the samples count: {}",
                e.ess
            );
            assert_eq!(e.max_weight, 2.0);
        }
    }

    /// A deterministic logging policy that always took option 1 says
    /// nothing about a candidate that takes option 0.
    #[test]
    fn without_support_the_estimate_is_inconclusive() {
        let samples: Vec<Sample> = (0..1_000)
            .map(|i| Sample {
                logged_propensity: 1.0,
                target: 0.0,
                supported: false,
                reward: f64::from(u8::from(i % 3 == 0)),
                predicted_logged: 0.3,
                predicted_target: 0.8,
            })
            .collect();
        let e = estimate(Estimator::Ips, &samples, 1);
        assert!(e.inconclusive);
        assert_eq!(e.support, 0.0);
        assert_eq!(e.ess, 0.0);
        // The candidate that repeats the logged policy is fully supported.
        let same: Vec<Sample> = samples
            .iter()
            .map(|s| Sample {
                target: 1.0,
                supported: true,
                ..*s
            })
            .collect();
        let e = estimate(Estimator::Snips, &same, 1);
        assert!(!e.inconclusive, "{e:?}");
        assert!((e.value.unwrap() - 334.0 / 1000.0).abs() < 1e-9);
    }

    #[test]
    fn no_samples_no_value() {
        let e = estimate(Estimator::Dr, &[], 1);
        assert_eq!((e.value, e.ci, e.inconclusive), (None, None, true));
    }
}
