//! Hold-offs of a signal type (`hold` on a type whose signals carry an
//! alert's `fingerprint`): how long a new alert waits in case it resolves
//! by itself (a transient: PagerDuty's auto-pause), and how many state
//! changes within how long make an alert flapping, held until it has been
//! stable for a while (hysteresis: it enters at `changes` within `within`
//! and leaves only after `stable` without a change).

use chrono::Duration;
use serde::{Deserialize, Deserializer};

/// The longest a transient hold-off may be: past it, real alerts wait.
const TRANSIENT_MAX: i64 = 60 * 60;

/// `hold = { transient = "2m", flap = { changes = 4, within = "10m" } }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HoldOff {
    /// A firing alert waits this long before it is decided; one that
    /// resolves within it is recorded as transient and never pages.
    #[serde(default, deserialize_with = "some_duration")]
    pub transient: Option<Duration>,
    #[serde(default)]
    pub flap: Option<Flap>,
}

/// When an alert counts as flapping, and when it is stable again.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flap {
    /// State changes (firing, resolved, firing …) that make it flapping …
    pub changes: u32,
    /// … within this long.
    #[serde(deserialize_with = "duration")]
    pub within: Duration,
    /// How long without a change before it is stable again (by default
    /// `within`).
    #[serde(default, deserialize_with = "some_duration")]
    pub stable: Option<Duration>,
}

impl Flap {
    /// How long without a change ends a flap.
    pub fn stable(&self) -> Duration {
        self.stable.unwrap_or(self.within)
    }
}

impl HoldOff {
    /// Whether the hold-off can be used; why not.
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = self.transient {
            if t <= Duration::zero() {
                return Err("hold.transient must be longer than nothing".into());
            }
            if t > Duration::seconds(TRANSIENT_MAX) {
                return Err(format!(
                    "hold.transient {}s: at most an hour, or real alerts wait that long",
                    t.num_seconds()
                ));
            }
        }
        if let Some(f) = &self.flap {
            if f.changes < 2 {
                return Err(
                    "hold.flap.changes must be at least 2 (a firing and its resolution)".into(),
                );
            }
            if f.within <= Duration::zero() {
                return Err("hold.flap.within must be longer than nothing".into());
            }
            if f.stable() < f.within / 2 {
                return Err(format!(
                    "hold.flap.stable ({}s) under half of within ({}s) would let a flapping alert out between two changes",
                    f.stable().num_seconds(),
                    f.within.num_seconds()
                ));
            }
        }
        Ok(())
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let std = humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("{text:?}: {e} (for example \"90s\", \"10m\")"))
    })?;
    Duration::from_std(std).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

pub(crate) fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HoldOff, String> {
        #[derive(Deserialize)]
        struct T {
            hold: HoldOff,
        }
        let t: T = toml::from_str(text).map_err(|e| e.to_string())?;
        t.hold.check()?;
        Ok(t.hold)
    }

    #[test]
    fn reads_durations_and_defaults_stable_to_within() {
        let h = parse(r#"hold = { transient = "2m", flap = { changes = 4, within = "10m" } }"#)
            .expect("valid");
        assert_eq!(h.transient, Some(Duration::minutes(2)));
        let f = h.flap.expect("flap");
        assert_eq!((f.changes, f.stable()), (4, Duration::minutes(10)));
    }

    #[test]
    fn refuses_what_cannot_work_naming_the_field() {
        let e = parse(r#"hold = { transient = "soon" }"#).expect_err("bad duration");
        assert!(e.contains("transient") && e.contains("soon"), "{e}");
        let e = parse(r#"hold = { transient = "2h" }"#).expect_err("too long");
        assert!(e.contains("at most an hour"), "{e}");
        let e =
            parse(r#"hold = { flap = { changes = 1, within = "5m" } }"#).expect_err("one change");
        assert!(e.contains("changes"), "{e}");
        let e = parse(r#"hold = { flap = { changes = 3, within = "10m", stable = "1m" } }"#)
            .expect_err("stable too short");
        assert!(e.contains("stable"), "{e}");
        let e = parse(r#"hold = { flap = { changes = 3 } }"#).expect_err("no within");
        assert!(e.contains("within"), "{e}");
    }
}
