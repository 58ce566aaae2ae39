//! A small console state made by hand, for the unit tests of `App::update`
//! and the views' snapshots: a few signals, decisions, review items and
//! flows, and a status. Nothing here comes from a simulated run, so a
//! change to the model or the simulator leaves these tests alone.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;
use serde_json::json;

use super::app::{App, Message};
use super::keymap::Keymap;
use super::link::{BreakerRow, ServiceRow, Status, TeamRow, Update};
use super::theme::Theme;
use crate::decide::policy::{Priority, Role};
use crate::decide::{Decision, Mode, ShadowChoice};
use crate::engine::EngineEvent;
use crate::flow::route::{Assignee, BreakerState};
use crate::flow::{Flow, FlowState, Step, StepState};
use crate::metrics::Summary;
use crate::review::{Actor, ReviewItem, ReviewState};
use crate::signal::Signal;

use crate::testkit::{at, decision, signal};

fn review(i: usize, decision: &Arc<Decision>, signal: &Arc<Signal>) -> ReviewItem {
    ReviewItem {
        id: format!("R{i:07}"),
        decision: Arc::clone(decision),
        signal: Arc::clone(signal),
        flow_id: format!("F{i:07}"),
        state: ReviewState::Open,
        created: decision.time,
        escalate_at: decision.time + Duration::minutes(20),
        deadline: decision.review_deadline,
        priority: Priority::High,
        required_role: Role::Operator,
        level: 0,
        claimed_by: None,
        claimed_at: None,
        snoozed_until: None,
        outcome: None,
        advice: None,
    }
}

fn flow(i: usize, decision: &Decision, state: FlowState) -> Flow {
    let mut pick = Step::new("fulfillment.pick", "fulfillment", &decision.subject, vec![]);
    pick.state = StepState::Done;
    let mut ship = Step::new(
        "fulfillment.ship",
        "fulfillment",
        &decision.subject,
        vec![0],
    );
    ship.state = StepState::Running;
    ship.assignee = Some(Assignee::Team {
        team: "warehouse".into(),
    });
    Flow {
        id: format!("F{i:07}"),
        decision_id: decision.id.clone(),
        signal_id: decision.signal_id.clone(),
        signal_type: decision.signal_type.clone(),
        subject: decision.subject.clone(),
        class: decision.class.clone(),
        option: decision.proposal.clone(),
        state,
        priority: Priority::High,
        created: decision.time,
        deadline: decision.deadline,
        escalated: i == 3,
        steps: vec![pick, ship],
        ..Flow::default()
    }
}

fn status(dir: PathBuf) -> Status {
    let hour = |decisions, within| Summary {
        decisions,
        within_sla: Some(within),
        automation_rate: Some(0.6),
        ..Summary::default()
    };
    Status {
        now: at(20),
        business_hours: true,
        model_version: "m-1".into(),
        policy_version: "2026.11-2".into(),
        services: vec![
            ServiceRow {
                id: "erp".into(),
                health: "up".into(),
                latency_ms: 40,
            },
            ServiceRow {
                id: "carrier".into(),
                health: "degraded".into(),
                latency_ms: 900,
            },
        ],
        teams: vec![
            TeamRow {
                id: "warehouse".into(),
                process: "fulfillment".into(),
                capacity: 10,
                load: 6,
                on_shift: true,
                shift: "06–22".into(),
            },
            TeamRow {
                id: "support".into(),
                process: "customer_service".into(),
                capacity: 8,
                load: 1,
                on_shift: true,
                shift: "08–20".into(),
            },
        ],
        breakers: vec![BreakerRow {
            executor: "carrier-api".into(),
            state: BreakerState::Open,
            failures: 5,
            trips: 1,
        }],
        model_breaker: None,
        advisor: None,
        ramp: None,
        ramp_step: None,
        class_modes: Vec::new(),
        total: Summary {
            signals: 4,
            decisions: 4,
            automation_rate: Some(0.5),
            override_rate: Some(0.25),
            within_sla: Some(0.75),
            flows_done: 1,
            ..Summary::default()
        },
        hourly: vec![hour(3, 0.7), hour(1, 0.8)],
        baseline_hourly: vec![hour(3, 0.6), hour(1, 0.6)],
        signals: 4,
        open_reviews: 2,
        oldest_review: Some(at(2)),
        claim_expiry_secs: 900,
        active_flows: 2,
        sla_at_risk: 1,
        quarantined: 0,
        quarantine: Vec::new(),
        noise: crate::engine::overview::Noise {
            paused: 2,
            flapping: 1,
            held: vec![
                ("flapping".into(), 7),
                ("grouped".into(), 38),
                ("inhibited".into(), 12),
                ("transient".into(), 5),
            ],
        },
        tasks: tasks(),
        pages: pages(),
        review_budgets: Vec::new(),
        incidents: incidents(),
        silences: silences(),
        rota: rota(),
        paging: crate::engine::PageFigures {
            by_state: vec![("acknowledged".into(), 1), ("triggered".into(), 1)],
            acknowledge_seconds: vec![("sre".into(), 95.0)],
            channels: vec![
                crate::engine::ChannelRow {
                    method: "email".into(),
                    failed: 1,
                    failing: true,
                    last_failure: Some((at(19), "answered 554".into())),
                    ..Default::default()
                },
                crate::engine::ChannelRow {
                    method: "slack".into(),
                    delivered: 2,
                    ..Default::default()
                },
            ],
        },
        attached: None,
        data_dir: dir,
        rules_version: String::new(),
    }
}

/// Two pages: one still escalating (its email failed), one acknowledged.
fn pages() -> Vec<crate::paging::Page> {
    use crate::paging::pages::Tells;
    use crate::paging::{Attempt, Delivery, Method, Page, PageState, Urgency};
    let attempt = |n, person: &str, method, minute, delivery| Attempt {
        n,
        person: person.into(),
        method,
        level: 0,
        round: 0,
        at: at(minute),
        delivery,
        tells: Tells::Page,
    };
    let page = |i: usize, state, minute| Page {
        id: format!("P{i:07}"),
        policy: "sre".into(),
        urgency: Urgency::High,
        title: format!("alert.firing on service/api-{i}: incident.page"),
        why: format!("decision D{i:07} chose `page_oncall`"),
        subject: format!("service/api-{i}"),
        decision_id: Some(format!("D{i:07}")),
        flow_id: Some(format!("F{i:07}")),
        review_id: None,
        signal_id: None,
        incident: None,
        state,
        level: 0,
        round: 0,
        level_since: at(minute),
        opened: at(minute),
        acknowledged: None,
        resolved: None,
        attempts: vec![attempt(
            1,
            "dana",
            Method::Slack,
            minute,
            Delivery::Delivered("answered 200 OK".into()),
        )],
        due: Vec::new(),
        notes: Vec::new(),
    };
    let mut open = page(2, PageState::Triggered, 18);
    open.attempts.push(attempt(
        2,
        "dana",
        Method::Email,
        19,
        Delivery::Failed("answered 554".into()),
    ));
    let mut acked = page(1, PageState::Acknowledged, 5);
    acked.acknowledged = Some(("dana".into(), at(6)));
    vec![open, acked]
}

/// One incident still firing, one resolved.
fn incidents() -> Vec<crate::flow::incident::IncidentRow> {
    use crate::flow::incident::{IncidentRow, IncidentState};
    let row = |i: usize, state, alerts, firing| IncidentRow {
        id: format!("I{i:07}"),
        kind: "alert.firing".into(),
        group: format!("subject=service/api-{i}"),
        labels: vec![("subject".into(), format!("service/api-{i}"))],
        state,
        opened: at(i as i64),
        alerts,
        firing,
        decision_id: format!("D{i:07}"),
        flow_id: format!("F{i:07}"),
        resolved: None,
    };
    let mut resolved = row(1, IncidentState::Resolved, 3, 0);
    resolved.resolved = Some(("its alerts resolved at the source".into(), at(9)));
    vec![row(2, IncidentState::Open, 41, 38), resolved]
}

/// A silence on the database, and one that ended.
fn silences() -> Vec<crate::noise::Silence> {
    use crate::noise::{Matcher, Silence};
    let silence = |id: &str, service: &str, ends: i64, held| Silence {
        id: id.into(),
        matchers: vec![Matcher::new("service", service, false, true)],
        starts_at: at(0),
        ends_at: at(ends),
        created_by: "tess".into(),
        comment: format!("{service} upgrade"),
        updated_at: at(0),
        expired_by: None,
        held,
        warned: false,
    };
    vec![
        silence("6f1c2a9e-0000-4000-8000-000000000001", "database", 80, 12),
        silence("b41d07c3-0000-4000-8000-000000000002", "web", 10, 0),
    ]
}

/// Two schedules: one covered, one in a gap until the morning.
fn rota() -> Vec<crate::paging::Rota> {
    use crate::paging::{OnCall, Rota};
    let on = |schedule: &str, person: Option<&str>, by: &str, until| OnCall {
        schedule: schedule.into(),
        team: "sre".into(),
        person: person.map(String::from),
        by: by.into(),
        until: Some(at(until)),
    };
    vec![
        Rota {
            now: on("sre-primary", Some("dana"), "layer 1", 60 * 24 * 3),
            next: Some(on("sre-primary", Some("emil"), "layer 1", 60 * 24 * 10)),
            gap: None,
        },
        Rota {
            now: on("sre-nights", None, "gap", 60 * 7),
            next: Some(on("sre-nights", Some("emil"), "override O00001", 60 * 9)),
            gap: Some((at(20), at(60 * 7))),
        },
    ]
}

/// Two open tasks: one late on a flow whose SLA was escalated, one an undo.
fn tasks() -> Vec<crate::flow::Task> {
    let task = |i: usize, template: &str, team: &str, agent: Option<&str>, minutes: i64| {
        crate::flow::Task {
            id: format!("F{i:07}.0"),
            flow: format!("F{i:07}"),
            step: 0,
            template: template.into(),
            process: "customer_service".into(),
            subject: format!("customer/c{i}"),
            team: team.into(),
            agent: agent.map(String::from),
            state: "open".into(),
            decision: format!("D{i:07}"),
            signal_type: "ticket.opened".into(),
            option: "route_tier1".into(),
            priority: if i == 3 {
                Priority::High
            } else {
                Priority::Normal
            },
            deadline: at(20 + minutes),
            started: Some(at(0)),
            escalated: i == 3,
            breached: minutes < 0,
            compensation: i == 5,
            note: None,
        }
    };
    vec![
        task(3, "customer_service.answer", "support", Some("ana"), -4),
        task(5, "fulfillment.restock", "warehouse", None, 35),
    ]
}

/// The console after four signals: two decided alone (one flow done, one
/// running late), two waiting for a person.
pub fn app() -> App {
    let keymap = Keymap::load("default", None).unwrap_or_default();
    let dir = PathBuf::from("/var/lib/signalbox");
    let mut app = App::new(
        keymap,
        Theme::fallback(false),
        Actor::new("tess", Role::Operator),
        dir.clone(),
    );
    let orders = [
        (1, "order.placed", "order/o1", "auto", FlowState::Done),
        (
            2,
            "order.placed",
            "order/o2",
            "review",
            FlowState::WaitingHuman,
        ),
        (3, "order.placed", "order/o3", "auto", FlowState::Running),
        (
            4,
            "ticket.opened",
            "customer/c7",
            "review",
            FlowState::WaitingHuman,
        ),
    ];
    let mut events = Vec::new();
    for (i, kind, subject, mode, state) in orders {
        let s = Arc::new(signal(i, kind, subject, json!({"value": 100 * i})));
        let options = [("standard_fulfillment", 0.62), ("expedite", 0.41)];
        let mut d = decision(i, &s, &options, mode, "operator");
        // A shadow candidate beside the live policy would have expedited
        // the second order without asking.
        d.shadow = Some(ShadowChoice {
            proposal: if i == 2 { "expedite" } else { &d.proposal }.to_string(),
            mode: if i == 2 { Mode::Auto } else { d.mode },
            policy_version: "candidate".into(),
            model_version: String::new(),
        });
        let d = Arc::new(d);
        events.push(EngineEvent::Signal {
            signal: Arc::clone(&s),
            duplicate: false,
        });
        events.push(EngineEvent::Decision(Arc::clone(&d)));
        if mode == "review" {
            events.push(EngineEvent::ReviewOpened(Box::new(review(i, &d, &s))));
        }
        events.push(EngineEvent::FlowChanged(Box::new(flow(i, &d, state))));
    }
    app.update(Message::Engine(Update::Events(events)));
    app.update(Message::Engine(Update::Status(Box::new(status(dir)))));
    app
}
