//! The Northwind simulator: the embedded default world.
//!
//! It feeds a deterministic signal stream (`stream`) into the engine, keeps
//! the hidden ground truth (`truth`) of which option works best, turns the
//! engine's settled choices into outcomes drawn from that truth, and plays
//! the operators who answer review items. It talks to the engine only through
//! the engine's API and the events it publishes.

pub mod draw;
pub mod executor;
pub mod run;
pub mod stream;
pub mod truth;
pub mod world;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::context::{Order, OrderState, Supplier, Tier, World, split_key};
use crate::decide::Mode;
use crate::decide::policy::Role;
use crate::engine::{Engine, EngineEvent, FlowFinished};
use crate::flow::FlowState;
use crate::review::{Action, Actor};
use crate::signal::Signal;

/// An engine's settings on `data_dir` with the simulated executor drawing
/// from `seed`: how the simulator, the console and the benchmarks run it.
pub fn engine_config(data_dir: &std::path::Path, seed: u64) -> crate::engine::EngineConfig {
    crate::engine::EngineConfig::new(data_dir, seed).with_executor(executor::Simulated::new(seed))
}

/// What the simulator knows about one decision.
#[derive(Debug, Clone)]
struct Known {
    /// What its luck is drawn about (`draw::about`): its signal and
    /// subject, the same in every run of the seed.
    luck: String,
    subject: String,
    signal_time: DateTime<Utc>,
    sla: Duration,
    truth: String,
    parent: Option<String>,
    children: Vec<String>,
    option: Option<String>,
    settled_at: Option<DateTime<Utc>>,
}

/// A simulated operator: answers one item at a time.
#[derive(Debug, Clone)]
struct SimOperator {
    actor: Actor,
    working_on: Option<(String, DateTime<Utc>)>,
}

/// Counts the simulator keeps about itself, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimStats {
    pub fed: u64,
    pub outcomes: u64,
    pub answers: u64,
    pub refused_answers: u64,
    pub shipped: u64,
}

pub struct Simulator {
    stream: Vec<Signal>,
    cursor: usize,
    /// Signals the world sends in reply (outcomes, shipments), by time.
    later: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    later_signals: crate::FastMap<u64, Signal>,
    later_seq: u64,
    tiers: crate::FastMap<String, Tier>,
    suppliers: BTreeMap<String, Supplier>,
    orders: crate::FastMap<String, Order>,
    escalated: crate::FastSet<String>,
    truth_by_signal: crate::FastMap<String, String>,
    delay_by_signal: crate::FastMap<String, f64>,
    known: crate::FastMap<String, Known>,
    fed_at: crate::FastMap<String, DateTime<Utc>>,
    operators: Vec<SimOperator>,
    /// Every draw comes from this seed and what it is about (`draw`).
    seed: u64,
    /// Share of answers in which an operator picks something other than the truth.
    pub operator_noise: f64,
    pub stats: SimStats,
}

/// The simulated day starts on a quarter's last business day.
pub fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-31T08:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

impl Simulator {
    pub fn new(seed: u64, start: DateTime<Utc>, duration: Duration, world: &World) -> Simulator {
        Simulator::after(seed, start, duration, world, 0)
    }

    /// A simulator whose signals, orders and tickets are numbered after
    /// `after` (the signals a resumed journal holds; see
    /// `stream::generate_after`). What an earlier session's simulator had
    /// scheduled (outcomes of flows in flight) is not journaled: those flows
    /// go on by their timers.
    pub fn after(
        seed: u64,
        start: DateTime<Utc>,
        duration: Duration,
        world: &World,
        after: u64,
    ) -> Simulator {
        let operators = [
            ("ana", Role::Lead),
            ("ben", Role::Operator),
            ("chloe", Role::Operator),
        ]
        .iter()
        .map(|(name, role)| SimOperator {
            actor: Actor::new(&format!("sim-{name}"), *role),
            working_on: None,
        })
        .collect();
        Simulator {
            stream: stream::generate_after(seed, start, duration, world, after),
            cursor: 0,
            later: BinaryHeap::new(),
            later_signals: Default::default(),
            later_seq: 0,
            tiers: world
                .customers
                .iter()
                .map(|c| (c.id.clone(), c.tier))
                .collect(),
            suppliers: world
                .suppliers
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect(),
            orders: world
                .orders
                .iter()
                .map(|o| (o.id.clone(), o.clone()))
                .collect(),
            escalated: Default::default(),
            truth_by_signal: Default::default(),
            delay_by_signal: Default::default(),
            known: Default::default(),
            fed_at: Default::default(),
            operators,
            seed,
            operator_noise: 0.1,
            stats: SimStats::default(),
        }
    }

    /// Keeps only the first `n` simulated operators (the console leaves
    /// most of the queue to the person at the keyboard).
    pub fn set_colleagues(&mut self, n: usize) {
        self.operators.truncate(n);
    }

    /// The signals due by `now`: the stream's, then the world's replies.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Signal> {
        let mut out = Vec::new();
        while self.cursor < self.stream.len() && self.stream[self.cursor].time <= now {
            out.push(self.stream[self.cursor].clone());
            self.cursor += 1;
        }
        while let Some(Reverse((at, seq))) = self.later.peek().copied() {
            if at > now {
                break;
            }
            self.later.pop();
            if let Some(s) = self.later_signals.remove(&seq) {
                out.push(s);
            }
        }
        for s in &out {
            self.observe_fed(s);
        }
        self.stats.fed += out.len() as u64;
        out
    }

    /// Keeps the simulator's own picture of the world in step with what it sends.
    fn observe_fed(&mut self, s: &Signal) {
        self.fed_at.insert(s.id.clone(), s.time);
        let customer = s.data_str("customer").map(String::from);
        match s.kind.as_str() {
            "escalation.opened" => {
                if let Some(c) = &customer {
                    self.escalated.insert(c.clone());
                }
            }
            "escalation.resolved" => {
                if let Some(c) = &customer {
                    self.escalated.remove(c);
                }
            }
            "order.placed" => {
                if let (Some(("order", id)), Some(c), Some(sup)) = (
                    split_key(&s.subject),
                    customer.as_deref(),
                    s.data_str("supplier"),
                ) {
                    self.orders.insert(
                        id.to_string(),
                        Order {
                            id: id.to_string(),
                            customer: c.to_string(),
                            supplier: sup.to_string(),
                            value: s.data_f64("value").unwrap_or(0.0),
                            promised: s.time,
                            state: OrderState::Open,
                        },
                    );
                }
            }
            "supplier.delayed" => {
                self.delay_by_signal
                    .insert(s.id.clone(), s.data_f64("delay_hours").unwrap_or(0.0));
            }
            _ => {}
        }
        let tier = customer
            .as_deref()
            .and_then(|c| self.tiers.get(c).copied())
            .or_else(|| {
                let (_, id) = split_key(&s.subject)?;
                let order = self.orders.get(id)?;
                self.tiers.get(&order.customer).copied()
            });
        let escalated = customer
            .as_deref()
            .is_some_and(|c| self.escalated.contains(c));
        if let Some(best) = truth::best(s, tier, escalated) {
            self.truth_by_signal.insert(s.id.clone(), best.to_string());
        }
    }

    fn schedule(&mut self, at: DateTime<Utc>, signal: Signal) {
        self.later_seq += 1;
        self.later.push(Reverse((at, self.later_seq)));
        self.later_signals.insert(self.later_seq, signal);
    }

    /// Reads what the engine published: judges decisions against the truth,
    /// tracks settled choices, and answers finished flows with outcomes.
    pub fn observe(&mut self, engine: &mut Engine, events: &[EngineEvent]) {
        for event in events {
            match event {
                EngineEvent::Decision(d) => {
                    if d.mode == Mode::Record {
                        continue;
                    }
                    let truth = match &d.parent {
                        None => self.truth_by_signal.get(&d.signal_id).cloned(),
                        Some(_) => self.truth_for_order(&d.signal_id, &d.subject),
                    };
                    let Some(truth) = truth else { continue };
                    if d.parent.is_none() {
                        engine.note_judgement(d.time, d.proposal == truth);
                    }
                    if let Some(parent) = d.parent.as_ref().and_then(|p| self.known.get_mut(p)) {
                        parent.children.push(d.id.clone());
                    }
                    self.known.insert(
                        d.id.clone(),
                        Known {
                            luck: draw::of_decision(d),
                            subject: d.subject.clone(),
                            signal_time: self.fed_at.get(&d.signal_id).copied().unwrap_or(d.time),
                            sla: d.deadline - d.time,
                            truth,
                            parent: d.parent.clone(),
                            children: Vec::new(),
                            option: None,
                            settled_at: None,
                        },
                    );
                }
                EngineEvent::Settled {
                    decision_id,
                    option,
                    at,
                } => {
                    if let Some(k) = self.known.get_mut(decision_id) {
                        k.option = Some(option.clone());
                        k.settled_at = Some(*at);
                    }
                }
                EngineEvent::FlowFinished(done) => self.flow_finished(done),
                _ => {}
            }
        }
    }

    fn truth_for_order(&self, signal_id: &str, subject: &str) -> Option<String> {
        let delay = self.delay_by_signal.get(signal_id).copied().unwrap_or(0.0);
        let (_, id) = split_key(subject)?;
        let order = self.orders.get(id)?;
        let alternate = self
            .suppliers
            .get(&order.supplier)
            .and_then(|s| s.alternate.as_ref())
            .and_then(|a| self.suppliers.get(a));
        Some(truth::best_for_order(delay, alternate).to_string())
    }

    /// The chance a settled decision ends within SLA: the truth, the wait
    /// for a person, and whether its flow got done.
    fn p_within(&self, k: &Known, state: FlowState) -> f64 {
        let Some(option) = &k.option else { return 0.0 };
        let mut p = if *option == k.truth {
            truth::P_RIGHT
        } else {
            truth::P_WRONG
        };
        if let Some(at) = k.settled_at {
            let waited = (at - k.signal_time).num_seconds().max(0) as f64;
            let sla = k.sla.num_seconds().max(1) as f64;
            p *= 1.0 - 0.7 * (waited / sla).min(1.0);
        }
        if state != FlowState::Done {
            p *= 0.3;
        }
        p
    }

    fn flow_finished(&mut self, done: &FlowFinished) {
        let Some(k) = self.known.get(&done.decision_id).cloned() else {
            return;
        };
        if k.parent.is_some() {
            return;
        }
        let mut right_children = 0usize;
        for child in &k.children {
            let Some(c) = self.known.get(child).cloned() else {
                continue;
            };
            let p = self.p_within(&c, done.state);
            let within = draw::about(self.seed, "branch outcome", &c.luck).random::<f64>() < p;
            right_children += usize::from(c.option.as_deref() == Some(c.truth.as_str()));
            self.outcome(done.time, child, &c.subject, &c, within, true);
        }
        let mut p = self.p_within(&k, done.state);
        if !k.children.is_empty() {
            p *= 0.5 + 0.5 * right_children as f64 / k.children.len() as f64;
        }
        let within = draw::about(self.seed, "outcome", &k.luck).random::<f64>() < p;
        self.outcome(
            done.time,
            &done.decision_id,
            &done.subject,
            &k,
            within,
            false,
        );
        // A fulfilled order ships.
        if done.state == FlowState::Done
            && let Some(("order", id)) = split_key(&done.subject)
            && let Some(order) = self.orders.get_mut(id)
            && order.state == OrderState::Open
        {
            order.state = OrderState::Shipped;
            let signal = reply(
                format!("ship-{id}"),
                "warehouse",
                "order.shipped",
                done.subject.clone(),
                done.time + Duration::minutes(1),
                json!({ "carrier": "NorthExpress" }),
            );
            self.stats.shipped += 1;
            self.schedule(done.time + Duration::minutes(1), signal);
        }
    }

    fn outcome(
        &mut self,
        at: DateTime<Utc>,
        decision: &str,
        subject: &str,
        k: &Known,
        within: bool,
        branch: bool,
    ) {
        let delay =
            Duration::minutes(draw::about(self.seed, "outcome delay", &k.luck).random_range(2..10));
        let signal = reply(
            format!("outcome-{decision}"),
            "outcomes",
            "outcome.recorded",
            subject.to_string(),
            at + delay,
            json!({
                "decision": decision, "within_sla": within, "branch": branch,
                "option": k.option.clone().unwrap_or_default(),
            }),
        );
        self.stats.outcomes += 1;
        self.schedule(at + delay, signal);
    }

    /// One step of simulated time: the signals due go in, timers run, the
    /// simulator reads what the engine published and its operators act.
    /// Returns everything the engine published, for other subscribers.
    pub fn step(&mut self, engine: &mut Engine, now: DateTime<Utc>) -> Vec<EngineEvent> {
        for signal in self.due(now) {
            engine.ingest(signal, now);
        }
        engine.tick(now);
        self.respond(engine, now)
    }

    /// The simulator's half of a step, once the signals due went in and the
    /// engine's timers ran: it reads what the engine published and its
    /// operators act. Returns everything the engine published.
    pub fn respond(&mut self, engine: &mut Engine, now: DateTime<Utc>) -> Vec<EngineEvent> {
        let mut events = engine.take_events();
        self.observe(engine, &events);
        self.operate(engine, now);
        let more = engine.take_events();
        self.observe(engine, &more);
        events.extend(more);
        events
    }

    /// The operators: free ones pick the most urgent open item they may
    /// answer; answers come due after a few minutes of reading.
    pub fn operate(&mut self, engine: &mut Engine, now: DateTime<Utc>) {
        for i in 0..self.operators.len() {
            let Some((review_id, due)) = self.operators[i].working_on.clone() else {
                continue;
            };
            if due > now {
                continue;
            }
            self.operators[i].working_on = None;
            let Some(item) = engine.reviews.get(&review_id) else {
                continue;
            };
            if item.outcome.is_some() {
                continue;
            }
            let allowed: Vec<String> = item.decision.allowed_options().map(String::from).collect();
            let truth = self.known.get(&item.decision.id).map(|k| k.truth.clone());
            let mut answer = truth.filter(|t| allowed.contains(t));
            let about = draw::of_decision(&item.decision);
            let mut luck = draw::about(self.seed, "answer", &about);
            if luck.random::<f64>() < self.operator_noise && !allowed.is_empty() {
                answer = Some(allowed[luck.random_range(0..allowed.len())].clone());
            }
            let actor = self.operators[i].actor.clone();
            let (action, note) = match answer {
                Some(a) if a != item.decision.proposal => {
                    let note = format!("{a} fits this case better");
                    (Action::Override { option: a }, note)
                }
                _ => (Action::Approve, "looks right".to_string()),
            };
            match engine.act(&review_id, &actor, action, &note, now) {
                Ok(_) => self.stats.answers += 1,
                Err(e) => {
                    self.stats.refused_answers += 1;
                    tracing::debug!(review = %review_id, error = %e, "simulated answer refused");
                }
            }
        }
        let taken: HashSet<String> = self
            .operators
            .iter()
            .filter_map(|o| o.working_on.as_ref().map(|(id, _)| id.clone()))
            .collect();
        let free: Vec<usize> = (0..self.operators.len())
            .filter(|&i| self.operators[i].working_on.is_none())
            .collect();
        if free.is_empty() {
            return;
        }
        let mut open = engine
            .open_reviews()
            .into_iter()
            .filter(|i| !taken.contains(&i.id));
        for i in free {
            let role = self.operators[i].actor.role;
            let moment = format!("{}/{}", self.operators[i].actor.name, now.timestamp());
            let minutes = draw::about(self.seed, "reading", &moment).random_range(1.5..4.0);
            let due = now + Duration::seconds((minutes * 60.0) as i64);
            // Like a person, skip what will hit its deadline before it can
            // be read: the most urgent item that can still be answered.
            let Some(item) = open
                .by_ref()
                .find(|item| item.required_role <= role && item.deadline > due)
            else {
                break;
            };
            self.operators[i].working_on = Some((item.id.clone(), due));
        }
    }
}

fn reply(
    id: String,
    source: &str,
    kind: &str,
    subject: String,
    time: DateTime<Utc>,
    data: Value,
) -> Signal {
    Signal {
        id,
        source: format!("northwind/{source}"),
        kind: kind.to_string(),
        subject,
        time,
        data,
        ..Signal::default()
    }
}
