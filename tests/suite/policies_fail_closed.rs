//! A policy rule that fails on its input is applied at its strictest: an
//! approval whose amount is not a number goes to a lead, as a large one
//! would, and the error is recorded in the decision and counted.

use crate::common::{client, decided, event, metric, post_event, serve};
use serde_json::{Value, json};

#[test]
fn an_amount_that_is_not_a_number_still_needs_the_lead() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let c = client();
    for (id, amount) in [
        ("a-text", json!("abc")),
        ("a-null", json!(null)),
        ("a-list", json!([75000])),
    ] {
        let e = event(
            id,
            "approval.requested",
            &format!("approval/{id}"),
            json!({"amount": amount}),
        );
        assert_eq!(post_event(&c, &s.base, &e).status(), 202);
        let d = decided(&c, &s.base, id);
        let explained: Value = c
            .get(format!("{}/v1/decisions/{d}", s.base))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let text = explained.to_string();
        assert_eq!(explained["decision"]["mode"], "review", "{id}: {text}");
        assert_eq!(explained["decision"]["review_role"], "lead", "{id}: {text}");
        let errors = explained["decision"]["policy_errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e
                .as_str()
                .unwrap()
                .starts_with("finance-very-large-approval-lead")),
            "{id}: {text}"
        );
        let forbidden = explained["decision"]["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["option"] == "auto_approve")
            .unwrap();
        assert_eq!(forbidden["allowed"], false, "{id}: {text}");
    }
    // A sound small amount is not touched by the failure of others.
    let e = event(
        "a-small",
        "approval.requested",
        "approval/small",
        json!({"amount": 120}),
    );
    assert_eq!(post_event(&c, &s.base, &e).status(), 202);
    decided(&c, &s.base, "a-small");
    assert!(metric(&c, &s.base, "signalbox_policy_errors_total ") >= 6.0);
    let reviews: Value = c
        .get(format!("{}/v1/reviews", s.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let leads = reviews["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["required_role"] == "lead")
        .count();
    assert_eq!(leads, 3, "{reviews}");
}
