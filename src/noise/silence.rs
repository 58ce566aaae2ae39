//! Silences, as Alertmanager has them: matchers, a start and an end, who
//! made it and why. A signal whose labels every matcher of an active
//! silence satisfies is held by it: recorded, and it opens nothing. The
//! owner is the credential that made it; an operator expires their own
//! silences, a lead anyone's. A deployment may cap how long one lasts, and
//! the owner hears before it runs out.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Matcher;
use crate::decide::policy::Role;
use crate::review::Actor;

/// Expired silences kept in memory (for listing) this long.
const KEPT_EXPIRED: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// A silence and what it has held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Who made it: the credential's identity.
    pub created_by: String,
    pub comment: String,
    pub updated_at: DateTime<Utc>,
    /// Who expired it before its end, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_by: Option<String>,
    /// Signals it has held.
    #[serde(default)]
    pub held: u64,
    /// Whether its owner has been told it is about to end.
    #[serde(default)]
    pub warned: bool,
}

impl Silence {
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Its matchers as Alertmanager prints them.
    pub fn text(&self) -> String {
        let m: Vec<String> = self.matchers.iter().map(Matcher::text).collect();
        m.join(" ")
    }

    fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// A silence as asked for (Alertmanager's postable silence); `id` updates
/// an existing one.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence {
    pub id: Option<String>,
    /// The id a new silence takes (a cluster node gives every partition
    /// the same one); none: a fresh one. If a silence has it already, it
    /// is changed as `id` would change it (by its owner or a lead).
    pub new_id: Option<String>,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
}

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SilenceRefused {
    #[error("{0}")]
    Invalid(String),
    #[error("silence {id} lasts {asked}, longer than this deployment's maximum of {max}")]
    TooLong {
        id: String,
        asked: String,
        max: String,
    },
    #[error("no silence {0}")]
    Unknown(String),
    #[error("silence {0} has already expired")]
    Expired(String),
    #[error("silence {id} is {owner}'s: only they or a lead may change it")]
    NotOwner { id: String, owner: String },
    #[error("a viewer may not silence anything")]
    Viewer,
}

/// Every silence in memory: the pending and active ones, and those that
/// expired in the last days.
#[derive(Debug, Default)]
pub struct SilenceBook {
    pub silences: BTreeMap<String, Silence>,
    changed: Vec<String>,
}

impl SilenceBook {
    /// Makes a silence (or changes the one of `asked.id`) as `actor`, no
    /// longer than `max` if there is one; its id.
    pub fn put(
        &mut self,
        asked: NewSilence,
        actor: &Actor,
        max: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<String, SilenceRefused> {
        if actor.role < Role::Operator {
            return Err(SilenceRefused::Viewer);
        }
        check(&asked, now)?;
        let existing = asked.id.as_ref().or(asked
            .new_id
            .as_ref()
            .filter(|id| self.silences.contains_key(*id)));
        let id = match existing {
            Some(id) => {
                let old = self.owned(id, actor)?;
                if old.state(now) == SilenceState::Expired {
                    return Err(SilenceRefused::Expired(id.clone()));
                }
                id.clone()
            }
            None => asked
                .new_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        };
        let starts_at = asked.starts_at.max(now);
        if let Some(max) = max
            && asked.ends_at - starts_at > max
        {
            return Err(SilenceRefused::TooLong {
                id,
                asked: human(asked.ends_at - starts_at),
                max: human(max),
            });
        }
        let held = self.silences.get(&id).map_or(0, |s| s.held);
        let created_by = match self.silences.get(&id) {
            Some(old) => old.created_by.clone(),
            None => actor.name.clone(),
        };
        self.silences.insert(
            id.clone(),
            Silence {
                id: id.clone(),
                matchers: asked.matchers,
                starts_at,
                ends_at: asked.ends_at,
                created_by,
                comment: asked.comment,
                updated_at: now,
                expired_by: None,
                held,
                warned: false,
            },
        );
        self.changed.push(id.clone());
        Ok(id)
    }

    /// Ends a silence now, as `actor` (its owner, or a lead).
    pub fn expire(
        &mut self,
        id: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<&Silence, SilenceRefused> {
        let state = self.owned(id, actor)?.state(now);
        if state == SilenceState::Expired {
            return Err(SilenceRefused::Expired(id.to_string()));
        }
        let s = self
            .silences
            .get_mut(id)
            .ok_or_else(|| SilenceRefused::Unknown(id.to_string()))?;
        s.starts_at = s.starts_at.min(now);
        s.ends_at = now;
        s.updated_at = now;
        s.expired_by = Some(actor.name.clone());
        self.changed.push(id.to_string());
        Ok(s)
    }

    /// The silence that holds a signal of these labels now, counting it.
    pub fn holding(
        &mut self,
        labels: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Option<&Silence> {
        let id = self
            .silences
            .values()
            .find(|s| s.state(now) == SilenceState::Active && s.holds(labels))?
            .id
            .clone();
        let s = self.silences.get_mut(&id)?;
        s.held += 1;
        self.changed.push(id);
        Some(s)
    }

    /// How many open items' or signals' labels a silence of `matchers`
    /// would hold.
    pub fn would_hold<'a>(
        matchers: &[Matcher],
        labels: impl Iterator<Item = &'a BTreeMap<String, String>>,
    ) -> usize {
        labels
            .filter(|l| matchers.iter().all(|m| m.matches(l)))
            .count()
    }

    /// Active silences ending within `within` whose owners have not been
    /// told yet, marked as told.
    pub fn ending(&mut self, now: DateTime<Utc>, within: Duration) -> Vec<Silence> {
        let mut out = Vec::new();
        for s in self.silences.values_mut() {
            if !s.warned && s.state(now) == SilenceState::Active && s.ends_at - now <= within {
                s.warned = true;
                out.push(s.clone());
                self.changed.push(s.id.clone());
            }
        }
        self.forget_expired(now);
        out
    }

    /// Restores a journaled silence.
    pub fn restore(&mut self, silence: Silence) {
        self.silences.insert(silence.id.clone(), silence);
    }

    /// Silences changed since the last call, as they stand.
    pub fn take_changed(&mut self) -> Vec<Silence> {
        let mut ids = std::mem::take(&mut self.changed);
        ids.sort();
        ids.dedup();
        ids.iter()
            .filter_map(|id| self.silences.get(id).cloned())
            .collect()
    }

    /// The silence, if `actor` may change it.
    fn owned(&self, id: &str, actor: &Actor) -> Result<&Silence, SilenceRefused> {
        let s = self
            .silences
            .get(id)
            .ok_or_else(|| SilenceRefused::Unknown(id.to_string()))?;
        if s.created_by != actor.name && actor.role < Role::Lead {
            return Err(SilenceRefused::NotOwner {
                id: id.to_string(),
                owner: s.created_by.clone(),
            });
        }
        Ok(s)
    }

    fn forget_expired(&mut self, now: DateTime<Utc>) {
        let horizon = now - Duration::days(KEPT_EXPIRED);
        self.silences.retain(|_, s| s.ends_at > horizon);
    }
}

/// A silence must match something, and end after it starts and after now.
fn check(asked: &NewSilence, now: DateTime<Utc>) -> Result<(), SilenceRefused> {
    let invalid = |why: String| Err(SilenceRefused::Invalid(why));
    if asked.matchers.is_empty() {
        return invalid("a silence needs at least one matcher".into());
    }
    for m in &asked.matchers {
        m.check().map_err(SilenceRefused::Invalid)?;
    }
    let empty = BTreeMap::new();
    if asked.matchers.iter().all(|m| m.matches(&empty)) {
        return invalid(
            "at least one matcher must not match the empty string: it would silence everything"
                .into(),
        );
    }
    if asked.ends_at <= asked.starts_at {
        return invalid("endsAt must be after startsAt".into());
    }
    if asked.ends_at <= now {
        return invalid("endsAt is in the past".into());
    }
    Ok(())
}

fn human(d: Duration) -> String {
    humantime::format_duration(d.to_std().unwrap_or_default()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher::new(name, value, false, true)
    }

    #[test]
    fn a_given_id_names_a_new_silence_and_changes_one_only_as_its_owner_may() {
        let mut book = SilenceBook::default();
        let ann = Actor::new("ann", Role::Operator);
        let bob = Actor::new("bob", Role::Operator);
        let mut given = asked(60);
        given.new_id = Some("6f1c1f4e-0000-4000-8000-000000000001".into());
        let id = book.put(given.clone(), &ann, None, at(0)).unwrap();
        assert_eq!(id, "6f1c1f4e-0000-4000-8000-000000000001");
        // Asked again (a retry): the same silence, not a second.
        assert_eq!(book.put(given.clone(), &ann, None, at(1)).unwrap(), id);
        assert_eq!(book.silences.len(), 1);
        // Someone else cannot take it over by naming it.
        assert!(matches!(
            book.put(given, &bob, None, at(2)),
            Err(SilenceRefused::NotOwner { .. })
        ));
    }

    fn asked(minutes: i64) -> NewSilence {
        NewSilence {
            id: None,
            new_id: None,
            matchers: vec![eq("service", "api")],
            starts_at: at(0),
            ends_at: at(minutes),
            comment: "deploying".into(),
        }
    }

    fn labels(service: &str) -> BTreeMap<String, String> {
        [("service".to_string(), service.to_string())].into()
    }

    #[test]
    fn a_silence_holds_what_it_matches_while_active() {
        let (ana, bob, lead) = (
            Actor::new("ana", Role::Operator),
            Actor::new("bob", Role::Operator),
            Actor::new("lena", Role::Lead),
        );
        let mut book = SilenceBook::default();
        let id = book.put(asked(60), &ana, None, at(0)).unwrap();
        assert_eq!(book.holding(&labels("api"), at(1)).map(|s| s.held), Some(1));
        assert!(book.holding(&labels("web"), at(1)).is_none());
        assert!(
            book.holding(&labels("api"), at(60)).is_none(),
            "expired at its end"
        );
        assert!(matches!(
            book.expire(&id, &bob, at(2)),
            Err(SilenceRefused::NotOwner { .. })
        ));
        assert_eq!(
            book.expire(&id, &lead, at(2))
                .unwrap()
                .expired_by
                .as_deref(),
            Some("lena")
        );
        assert!(book.holding(&labels("api"), at(3)).is_none());
        assert!(matches!(
            book.expire(&id, &ana, at(4)),
            Err(SilenceRefused::Expired(_))
        ));
    }

    #[test]
    fn bad_silences_are_refused_and_length_is_capped() {
        let ana = Actor::new("ana", Role::Operator);
        let mut book = SilenceBook::default();
        let mut everything = asked(60);
        everything.matchers = vec![Matcher::new("service", ".*", true, true)];
        assert!(matches!(
            book.put(everything, &ana, None, at(0)),
            Err(SilenceRefused::Invalid(_))
        ));
        assert!(matches!(
            book.put(asked(60 * 24 * 8), &ana, Some(Duration::days(7)), at(0)),
            Err(SilenceRefused::TooLong { .. })
        ));
        let viewer = Actor::new("vic", Role::Viewer);
        assert_eq!(
            book.put(asked(60), &viewer, None, at(0)),
            Err(SilenceRefused::Viewer)
        );
        let id = book.put(asked(60), &ana, None, at(0)).unwrap();
        let ending = book.ending(at(50), Duration::minutes(15));
        assert_eq!(ending.len(), 1);
        assert!(
            book.ending(at(51), Duration::minutes(15)).is_empty(),
            "told once"
        );
        assert_eq!(book.silences[&id].created_by, "ana");
    }
}
