//! The queue of review items: which are open, their timers, who holds
//! them, and the actions that settle them.
//!
//! An open item is kept as its journal row (its state) beside its decision
//! and signal packed (`packed.rs`): a storm nobody answers is 100,000s of
//! items, each held until it is answered or times out, so what is read only
//! when someone acts, a timer settles an item or a page of items is asked
//! for is kept compressed. The queue gives out whole items, unpacked.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::packed::{Dictionary, Held, Packable};
use super::{
    Action, Actor, ReviewAction, ReviewError, ReviewItem, ReviewRow, ReviewState, ReviewTiming,
    Settled,
};
use crate::decide::Decision;
use crate::decide::policy::Role;
use crate::signal::Signal;
use crate::timers::Timers;

/// What an item keeps of its decision while it waits: all but what the
/// policies read (`policy_input`), which only replay uses and the journal
/// keeps. An open item is held for as long as nobody answers it, and that
/// input (the context's fields, the services' health) was most of it.
fn held(decision: Arc<Decision>) -> Arc<Decision> {
    if decision.policy_input.is_none() {
        return decision;
    }
    let mut slim = Decision::clone(&decision);
    slim.policy_input = None;
    Arc::new(slim)
}

impl Packable for Decision {
    fn dictionary() -> &'static Dictionary {
        static DECISIONS: Dictionary = Dictionary::new();
        &DECISIONS
    }
}

impl Packable for Signal {
    fn dictionary() -> &'static Dictionary {
        static SIGNALS: Dictionary = Dictionary::new();
        &SIGNALS
    }
}

/// An item as the queue keeps it.
#[derive(Debug)]
struct Kept {
    row: ReviewRow,
    decision: Held<Decision>,
    signal: Held<Signal>,
}

impl Kept {
    fn new(item: &ReviewItem) -> Box<Kept> {
        Box::new(Kept {
            row: item.stored(),
            decision: Held::new(held(Arc::clone(&item.decision))),
            signal: Held::new(Arc::clone(&item.signal)),
        })
    }

    /// The whole item.
    fn item(&self) -> Result<ReviewItem, ReviewError> {
        let unreadable = |error: super::packed::PackError| ReviewError::Unreadable {
            id: self.row.id.clone(),
            error: error.to_string(),
        };
        let decision = self.decision.get().map_err(unreadable)?;
        let signal = self.signal.get().map_err(unreadable)?;
        Ok(self.row.clone().into_item(decision, signal))
    }
}

/// Decided items kept in memory; older ones leave memory (the journal keeps
/// them, and answers "already decided by ..." for them: `Engine::act`).
/// Nothing needs them: the console keeps its own, explanations read the
/// journal.
pub const KEEP_DECIDED: usize = 1_000;

#[derive(Debug, Default)]
pub struct ReviewQueue {
    items: BTreeMap<String, Box<Kept>>,
    open: BTreeSet<String>,
    /// Each open item's next timer (escalation or final deadline), so a
    /// tick looks only at items with something due.
    timers: Timers,
    /// Decided items, oldest first, for `KEEP_DECIDED`.
    decided: VecDeque<String>,
    /// Overrides `KEEP_DECIDED` (tests).
    keep_decided: Option<usize>,
    /// The open item waiting on each flow.
    by_flow: HashMap<String, String>,
    timing: ReviewTiming,
    /// Open items by decision class, and each class's budget (`default`
    /// for the others): past it, new items take their safe default.
    by_class: HashMap<String, usize>,
    budget: super::budget::Budgets,
    /// Classes over budget since they last went under it (told once).
    over: BTreeSet<String>,
}

/// Refuses an item already decided, saying by whom.
fn undecided(item: &ReviewItem) -> Result<(), ReviewError> {
    match &item.outcome {
        Some(done) => Err(ReviewError::AlreadyDecided {
            id: item.id.clone(),
            action: done.action.name().to_string(),
            by: done.actor.name.clone(),
            at: done.time,
        }),
        None => Ok(()),
    }
}

/// Refuses an option the item's decision does not allow (policies took
/// out the forbidden ones), naming those it does.
fn allowed(item: &ReviewItem, option: &str) -> Result<(), ReviewError> {
    let allowed: Vec<&str> = item.decision.allowed_options().collect();
    if allowed.contains(&option) {
        return Ok(());
    }
    Err(ReviewError::UnknownOption {
        id: item.id.clone(),
        option: option.to_string(),
        allowed: allowed.join(", "),
    })
}

/// Whether `actor` may take `action` on `item` with `note`: not on an item
/// already decided, not as a viewer, not below the item's role (except to
/// claim, escalate or snooze), an override to another allowed option and
/// with a note, a rejection with a note.
fn check(item: &ReviewItem, actor: &Actor, action: &Action, note: &str) -> Result<(), ReviewError> {
    let id = &item.id;
    undecided(item)?;
    if actor.role == Role::Viewer {
        return Err(ReviewError::Viewer {
            actor: actor.name.clone(),
        });
    }
    if actor.role < item.required_role
        && !matches!(
            action,
            Action::Claim | Action::Escalate | Action::Snooze { .. }
        )
    {
        return Err(ReviewError::RoleTooLow {
            id: id.to_string(),
            actor: actor.name.clone(),
            needed: item.required_role.as_str(),
            has: actor.role.as_str(),
        });
    }
    match action {
        Action::Override { option } => {
            if note.trim().is_empty() {
                return Err(ReviewError::NoteRequired { action: "override" });
            }
            if option == &item.decision.proposal {
                return Err(ReviewError::OverrideSameAsProposal(option.clone()));
            }
            allowed(item, option)?;
        }
        Action::Reject if note.trim().is_empty() => {
            return Err(ReviewError::NoteRequired { action: "reject" });
        }
        _ => {}
    }
    Ok(())
}

impl ReviewQueue {
    fn reschedule(&mut self, id: &str) {
        let at = self
            .row(id)
            .filter(|row| row.outcome.is_none())
            .map(|row| row.escalate_at.min(row.deadline));
        self.timers.set(id, at);
    }

    /// How long a claim holds an item.
    pub fn claim_expiry(&self) -> Duration {
        self.timing.claim_expiry
    }

    pub fn set_claim_expiry(&mut self, expiry: Duration) {
        self.timing.claim_expiry = expiry;
    }

    /// Keeps at most `n` decided items in memory instead of `KEEP_DECIDED`.
    pub fn set_keep_decided(&mut self, n: usize) {
        self.keep_decided = Some(n);
        self.evict();
    }

    /// Lets the oldest decided items beyond `KEEP_DECIDED` leave memory.
    fn evict(&mut self) {
        while self.decided.len() > self.keep_decided.unwrap_or(KEEP_DECIDED) {
            if let Some(id) = self.decided.pop_front() {
                self.items.remove(&id);
            }
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The open item opened first (ids count up as items open).
    pub fn oldest_open(&self) -> Option<&ReviewRow> {
        self.open.iter().next().and_then(|id| self.row(id))
    }

    /// Decided items still in memory.
    pub fn decided_count(&self) -> usize {
        self.decided.len()
    }

    /// Open items, most urgent first.
    pub fn open_items(&self) -> Vec<ReviewItem> {
        let mut rows: Vec<&ReviewRow> = self.open.iter().filter_map(|id| self.row(id)).collect();
        rows.sort_by(|a, b| a.urgency().cmp(&b.urgency()));
        rows.into_iter()
            .filter_map(|row| self.get(&row.id))
            .collect()
    }

    /// An item, whole (`None` if there is none, or, said in the log, if
    /// its decision cannot be read back).
    pub fn get(&self, id: &str) -> Option<ReviewItem> {
        match self.items.get(id)?.item() {
            Ok(item) => Some(item),
            Err(error) => {
                tracing::error!(%error, "a review item is left out");
                None
            }
        }
    }

    /// An item's state, without its decision and signal.
    pub fn row(&self, id: &str) -> Option<&ReviewRow> {
        self.items.get(id).map(|kept| &kept.row)
    }

    /// The ids of the open items, in no order.
    pub fn open_ids(&self) -> impl Iterator<Item = &String> {
        self.open.iter()
    }

    /// The open item waiting on `flow_id`, if any.
    pub fn open_for_flow(&self, flow_id: &str) -> Option<&ReviewRow> {
        self.by_flow.get(flow_id).and_then(|id| self.row(id))
    }

    /// Opens an item for a decision that needs a person (an id already
    /// in the queue keeps its item).
    pub fn open(
        &mut self,
        id: String,
        decision: Arc<Decision>,
        signal: Arc<Signal>,
        flow_id: String,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        if let Some(item) = self.get(&id) {
            return item;
        }
        let window = (decision.review_deadline - now).max(Duration::minutes(1));
        let escalate_at =
            now + Duration::seconds((window.num_seconds() as f64 * self.timing.escalate_at) as i64);
        let item = ReviewItem {
            id: id.clone(),
            priority: decision.priority,
            required_role: decision.review_role,
            deadline: now + window,
            escalate_at,
            decision: held(decision),
            signal,
            flow_id,
            state: ReviewState::Open,
            created: now,
            level: 0,
            claimed_by: None,
            claimed_at: None,
            snoozed_until: None,
            outcome: None,
            advice: None,
        };
        self.open.insert(id.clone());
        self.by_flow.insert(item.flow_id.clone(), id.clone());
        *self
            .by_class
            .entry(item.decision.class.clone())
            .or_default() += 1;
        self.items.insert(id.clone(), Kept::new(&item));
        self.reschedule(&id);
        item
    }

    /// Each class's budget of open items (`default` for the others).
    pub fn set_budget(&mut self, budget: super::budget::Budgets) {
        self.budget = budget;
    }

    fn budget_of(&self, class: &str, now: DateTime<Utc>) -> Option<usize> {
        self.budget.of(class, now)
    }

    /// Whether a new item of `class` would be over its budget: the items
    /// open, the budget, and whether it is the first time since the class
    /// was last under it (to say so once).
    pub fn over_budget(&mut self, class: &str, now: DateTime<Utc>) -> Option<(usize, usize, bool)> {
        let budget = self.budget_of(class, now)?;
        let open = self.by_class.get(class).copied().unwrap_or(0);
        if open < budget {
            return None;
        }
        Some((open, budget, self.over.insert(class.to_string())))
    }

    /// Each class with a budget: open items and the budget at `now`.
    pub fn budgets(&self, now: DateTime<Utc>) -> Vec<(String, usize, usize)> {
        let mut classes: BTreeSet<&String> = self.by_class.keys().collect();
        classes.extend(self.budget.named());
        classes
            .into_iter()
            .filter_map(|c| {
                let budget = self.budget_of(c, now)?;
                Some((
                    c.clone(),
                    self.by_class.get(c).copied().unwrap_or(0),
                    budget,
                ))
            })
            .collect()
    }

    /// Puts back an item read from the journal.
    pub fn restore(&mut self, item: ReviewItem) {
        if item.state != ReviewState::Decided {
            self.open.insert(item.id.clone());
            self.by_flow.insert(item.flow_id.clone(), item.id.clone());
            *self
                .by_class
                .entry(item.decision.class.clone())
                .or_default() += 1;
        }
        let id = item.id.clone();
        self.items.insert(id.clone(), Kept::new(&item));
        self.reschedule(&id);
    }

    /// Puts the advisor's proposal on an item not yet decided: one of the
    /// options its decision allows.
    pub fn advise(&mut self, id: &str, advice: super::Advice) -> Result<ReviewItem, ReviewError> {
        let kept = self
            .items
            .get_mut(id)
            .ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
        let mut item = kept.item()?;
        undecided(&item)?;
        allowed(&item, &advice.option)?;
        item.advice = Some(advice);
        kept.row = item.stored();
        Ok(item)
    }

    /// Checks and applies an operator's action. Nothing changes on error.
    pub fn act(
        &mut self,
        id: &str,
        actor: &Actor,
        action: Action,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Settled, ReviewError> {
        let kept = self
            .items
            .get_mut(id)
            .ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
        let mut item = kept.item()?;
        check(&item, actor, &action, note)?;
        // A claim is exclusive: another's live claim is taken over only by
        // a lead (the note records from whom).
        let mut note = note.to_string();
        if action == Action::Claim
            && let Some((holder, since)) = item.holder(now, self.timing.claim_expiry)
            && holder != actor.name
        {
            if actor.role < Role::Lead {
                return Err(ReviewError::ClaimedByOther {
                    id: id.to_string(),
                    holder: holder.to_string(),
                    since: since
                        .map_or_else(|| "before claims were timed".into(), |t| t.to_rfc3339()),
                });
            }
            let taken = format!("taken over from {holder}");
            note = if note.is_empty() {
                taken
            } else {
                format!("{note} ({taken})")
            };
        }
        let record = ReviewAction {
            review_id: id.to_string(),
            decision_id: item.decision.id.clone(),
            time: now,
            actor: actor.clone(),
            action: action.clone(),
            note,
            advised: item.advice.as_ref().map(|a| a.option.clone()),
        };
        match &action {
            Action::Claim => {
                item.claimed_by = Some(actor.name.clone());
                item.claimed_at = Some(now);
            }
            Action::Escalate => {
                item.level += 1;
                item.state = ReviewState::Escalated;
                item.priority = item.priority.raised();
            }
            Action::Snooze { minutes } => {
                let until = (now
                    + Duration::minutes(i64::from(*minutes)).min(self.timing.max_snooze))
                .min(item.deadline);
                item.snoozed_until = Some(until);
                item.escalate_at = item.escalate_at.max(until);
                item.state = ReviewState::Snoozed;
            }
            _ => {
                item.state = ReviewState::Decided;
                item.outcome = Some(record.clone());
                if actor.name != Actor::system().name {
                    self.budget.answered(&actor.name, now);
                }
                self.open.remove(id);
                self.by_flow.remove(&item.flow_id);
                let class = &item.decision.class;
                if let Some(n) = self.by_class.get_mut(class) {
                    *n = n.saturating_sub(1);
                    if self.budget.of(class, now).is_some_and(|b| *n < b) {
                        self.over.remove(class);
                    }
                }
                crate::shrink(&mut self.by_flow);
                self.decided.push_back(id.to_string());
            }
        }
        kept.row = item.stored();
        self.reschedule(id);
        self.evict();
        Ok(Settled { item, record })
    }

    /// Runs the timers: escalation of unanswered items, then the safe default
    /// at the final deadline. Returns every change, for the journal.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Settled> {
        let mut changes = Vec::new();
        for id in self.timers.due(now) {
            let Some(row) = self.row(&id) else {
                continue;
            };
            let system = Actor::system();
            if row.deadline <= now {
                let Some(option) = self.get(&id).map(|item| item.decision.safe_default.clone())
                else {
                    continue;
                };
                let note = format!(
                    "no answer by the final deadline; took the policy's safe default `{option}`"
                );
                if let Ok(settled) =
                    self.act(&id, &system, Action::SafeDefault { option }, &note, now)
                {
                    changes.push(settled);
                }
            } else if row.level == 0 || row.state == ReviewState::Snoozed {
                let note = "unanswered: escalated".to_string();
                if let Ok(mut settled) = self.act(&id, &system, Action::Escalate, &note, now) {
                    // Escalate once per window; the next timer is the deadline.
                    settled.item.escalate_at = settled.item.deadline;
                    settled.item.snoozed_until = None;
                    if let Some(kept) = self.items.get_mut(&id) {
                        kept.row = settled.item.stored();
                    }
                    self.reschedule(&id);
                    changes.push(settled);
                }
            } else if let Some(kept) = self.items.get_mut(&id) {
                kept.row.escalate_at = kept.row.deadline;
                self.reschedule(&id);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::policy::Priority;
    use crate::testkit::{at, decision, signal};

    /// A queue with item R1 open at minute 0: proposal `ship`, `expedite`
    /// allowed too, reviewed by `role` within 30 minutes.
    fn queue(role: &str) -> ReviewQueue {
        let s = signal(0, "order.placed", "order/o1", serde_json::json!({}));
        let d = decision(1, &s, &[("ship", 0.6), ("expedite", 0.4)], "review", role);
        let mut q = ReviewQueue::default();
        q.open("R1".into(), Arc::new(d), Arc::new(s), "F1".into(), at(0));
        q
    }

    fn person(role: Role) -> Actor {
        Actor::new("ana", role)
    }

    #[test]
    fn an_item_named_by_ids_joins_back_with_its_decision_and_signal() {
        let q = queue("operator");
        let item = q.get("R1").unwrap();
        let text = serde_json::to_string(&item.stored()).unwrap();
        assert!(!text.contains("\"options\""), "{text}");
        let row: ReviewRow = serde_json::from_str(&text).unwrap();
        let back = row.into_item(Arc::clone(&item.decision), Arc::clone(&item.signal));
        assert_eq!(back, item);
    }

    #[test]
    fn viewers_cannot_act_and_operators_cannot_decide_a_leads_item() {
        let mut q = queue("lead");
        let viewer = q.act("R1", &person(Role::Viewer), Action::Claim, "", at(1));
        assert!(matches!(viewer, Err(ReviewError::Viewer { .. })));
        let operator = person(Role::Operator);
        let approve = q.act("R1", &operator, Action::Approve, "", at(1));
        assert!(matches!(
            approve,
            Err(ReviewError::RoleTooLow { needed: "lead", .. })
        ));
        // Below the role, one may still claim, escalate or snooze.
        for action in [
            Action::Claim,
            Action::Escalate,
            Action::Snooze { minutes: 5 },
        ] {
            assert!(q.act("R1", &operator, action, "", at(2)).is_ok());
        }
        assert!(
            q.act("R1", &person(Role::Lead), Action::Approve, "", at(3))
                .is_ok()
        );
        assert_eq!(q.open_count(), 0);
    }

    /// A claim is kept with its time, survives the journal row, and lapses
    /// after the queue's claim expiry.
    #[test]
    fn a_claim_holds_the_item_until_it_lapses() {
        let mut q = queue("operator");
        q.set_claim_expiry(Duration::minutes(10));
        q.act("R1", &person(Role::Operator), Action::Claim, "", at(2))
            .unwrap();
        let item = q.get("R1").unwrap();
        let expiry = q.claim_expiry();
        assert_eq!(item.holder(at(11), expiry), Some(("ana", Some(at(2)))));
        assert_eq!(item.holder(at(12), expiry), None);
        let row: ReviewRow =
            serde_json::from_value(serde_json::to_value(item.stored()).unwrap()).unwrap();
        assert_eq!(row.claimed_at, Some(at(2)));
    }

    #[test]
    fn advice_is_an_allowed_option_on_an_open_item_and_answers_name_it() {
        let mut q = queue("operator");
        let advice = |option: &str| crate::review::Advice {
            option: option.into(),
            reason: "the customer is gold".into(),
            citations: vec![],
            model: "m".into(),
            time: at(1),
            shadow: false,
        };
        assert!(matches!(
            q.advise("R1", advice("teleport")),
            Err(ReviewError::UnknownOption { .. })
        ));
        assert_eq!(q.get("R1").and_then(|i| i.advice), None);
        let item = q.advise("R1", advice("expedite")).unwrap();
        assert_eq!(item.advice.map(|a| a.option), Some("expedite".into()));
        assert_eq!(q.get("R1").map(|i| i.state), Some(ReviewState::Open));
        let done = q
            .act("R1", &person(Role::Operator), Action::Approve, "", at(2))
            .unwrap();
        assert_eq!(done.record.advised.as_deref(), Some("expedite"));
        assert!(matches!(
            q.advise("R1", advice("ship")),
            Err(ReviewError::AlreadyDecided { .. })
        ));
    }

    #[test]
    fn overrides_and_rejections_say_why_and_stay_among_the_allowed() {
        let mut q = queue("operator");
        let op = person(Role::Operator);
        let override_to = |option: &str| Action::Override {
            option: option.into(),
        };
        assert_eq!(
            q.act("R1", &op, override_to("expedite"), " ", at(1)),
            Err(ReviewError::NoteRequired { action: "override" })
        );
        assert_eq!(
            q.act("R1", &op, override_to("ship"), "why", at(1)),
            Err(ReviewError::OverrideSameAsProposal("ship".into()))
        );
        assert!(matches!(
            q.act("R1", &op, override_to("teleport"), "why", at(1)),
            Err(ReviewError::UnknownOption { .. })
        ));
        assert_eq!(
            q.act("R1", &op, Action::Reject, "", at(1)),
            Err(ReviewError::NoteRequired { action: "reject" })
        );
        // Nothing changed on any refusal.
        assert_eq!(q.get("R1").map(|i| i.state), Some(ReviewState::Open));
        let done = q.act("R1", &op, override_to("expedite"), "vip", at(2));
        assert_eq!(
            done.map(|s| s.item.chosen().map(String::from)),
            Ok(Some("expedite".into()))
        );
        assert!(matches!(
            q.act("R1", &op, Action::Approve, "", at(3)),
            Err(ReviewError::AlreadyDecided { .. })
        ));
        assert_eq!(
            q.act("R9", &op, Action::Approve, "", at(3)),
            Err(ReviewError::NotFound("R9".into()))
        );
    }

    /// Unanswered, an item escalates once (at 60 % of its window), then
    /// takes the safe default at its deadline; both are the system's.
    #[test]
    fn an_unanswered_item_escalates_once_then_takes_the_safe_default() {
        let mut q = queue("operator");
        assert!(q.tick(at(17)).is_empty());
        let escalated = q.tick(at(18));
        assert_eq!(escalated.len(), 1);
        assert_eq!(escalated[0].record.action, Action::Escalate);
        assert_eq!(escalated[0].item.priority, Priority::Urgent);
        assert!(q.tick(at(29)).is_empty(), "escalated once per window");
        let settled = q.tick(at(30));
        assert_eq!(settled.len(), 1);
        assert_eq!(
            settled[0].record.action,
            Action::SafeDefault {
                option: "hold_for_review".into()
            }
        );
        assert_eq!(settled[0].record.actor, Actor::system());
        assert_eq!(q.open_count(), 0);
        assert!(q.tick(at(60)).is_empty());
    }

    /// A snooze holds escalation back until it ends, never past the deadline.
    #[test]
    fn a_snooze_holds_escalation_back_but_not_the_deadline() {
        let mut q = queue("operator");
        let op = person(Role::Operator);
        let snoozed = q.act("R1", &op, Action::Snooze { minutes: 240 }, "", at(1));
        let until = snoozed.map(|s| s.item.snoozed_until);
        assert_eq!(until, Ok(Some(at(30))), "capped at the item's deadline");
        assert!(q.tick(at(25)).is_empty(), "no escalation while snoozed");
        let settled = q.tick(at(30));
        assert!(matches!(
            settled.first().map(|s| &s.record.action),
            Some(Action::SafeDefault { .. })
        ));
    }
}
