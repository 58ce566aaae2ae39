//! The supplier-delay cascade: one signal fans out across procurement,
//! fulfillment and customer service, per affected open order.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use signalbox::context::Tier;
use signalbox::decide::policy::Role;
use signalbox::engine::Engine;
use signalbox::journal::read;
use signalbox::review::{Action, Actor};
use signalbox::signal::Signal;
use signalbox::sim::{default_start, world};

#[test]
fn a_supplier_delay_fans_out_across_processes_per_open_order() {
    let dir = tempfile::tempdir().unwrap();
    let start = default_start();
    let world = world::northwind(&mut ChaCha8Rng::seed_from_u64(4), start);
    let mut engine =
        Engine::open(signalbox::sim::engine_config(dir.path(), 4), world, start).unwrap();
    let open: Vec<_> = engine
        .context
        .open_orders_of("baltic")
        .into_iter()
        .cloned()
        .collect();
    assert!(open.len() >= 5, "Baltic carries many open orders");
    let premium: BTreeSet<String> = open
        .iter()
        .filter(|o| {
            engine
                .context
                .customers
                .get(&o.customer)
                .is_some_and(|c| c.tier >= Tier::Gold)
        })
        .map(|o| o.customer.clone())
        .collect();

    let text = json!({
        "specversion": "1.0", "id": "delay-1", "source": "supplier-portal", "type": "supplier.delayed",
        "subject": "supplier/baltic", "time": start.to_rfc3339(),
        "data": {"supplier": "baltic", "delay_hours": 72.0},
    })
    .to_string();
    engine.ingest(Signal::from_json(&text, start).unwrap(), start);
    // A cold model does not act alone on a rare, costly choice: a person does.
    let item = engine.open_reviews()[0].clone();
    let lead = Actor::new("lea", Role::Lead);
    let action = if item.decision.proposal == "cascade_replan" {
        Action::Approve
    } else {
        Action::Override {
            option: "cascade_replan".into(),
        }
    };
    engine
        .act(
            &item.id,
            &lead,
            action,
            "72h late: re-plan everything",
            start,
        )
        .unwrap();
    engine.tick(start);

    let flow = engine.flows.get(&item.flow_id).unwrap().clone();
    assert_eq!(flow.option, "cascade_replan");
    let processes: BTreeSet<&str> = flow.steps.iter().map(|s| s.process.as_str()).collect();
    assert_eq!(
        processes,
        BTreeSet::from(["customer_service", "fulfillment", "procurement"])
    );
    let moved: BTreeSet<&str> = flow
        .steps
        .iter()
        .filter(|s| s.template == "fulfillment.move_promised_date")
        .map(|s| s.subject.as_str())
        .collect();
    assert_eq!(
        moved.len(),
        open.len(),
        "every affected order's promised date moves"
    );
    let told: BTreeSet<String> = flow
        .steps
        .iter()
        .filter(|s| s.template == "customer_service.notify_customer")
        .map(|s| s.subject.trim_start_matches("customer/").to_string())
        .collect();
    assert_eq!(
        told, premium,
        "gold and platinum customers are told, others not"
    );
    // A date moves only after its order is re-planned or re-sourced.
    for (i, step) in flow.steps.iter().enumerate() {
        if step.template == "fulfillment.move_promised_date" {
            let before = &flow.steps[step.after[0]];
            assert!(
                before.process == "procurement" && before.subject == step.subject,
                "step {i}"
            );
        }
    }
    let parent = item.decision.id.clone();
    engine.flush().unwrap().wait().unwrap();
    engine.close().unwrap();
    let e = read::explain(dir.path(), &parent).unwrap().unwrap();
    assert_eq!(
        e.children.len(),
        open.len(),
        "one journaled sub-decision per order"
    );
    assert!(
        e.children
            .iter()
            .all(|c| c.parent.as_deref() == Some(parent.as_str()))
    );
}
