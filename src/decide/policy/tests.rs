//! Tests of `decide::policy`.

use super::*;
use crate::decide::celval::ContextView;
use crate::playbook::DEFAULT_PLAYBOOK;
use crate::playbook::steps::{DEFAULT_STEPS, StepCatalogue};
use serde_json::json;

fn playbook() -> Playbook {
    let steps = StepCatalogue::parse(DEFAULT_STEPS, "steps").unwrap();
    Playbook::parse(DEFAULT_PLAYBOOK, "playbook", &steps).unwrap()
}

fn cel(v: &serde_json::Value) -> Box<dyn Val + '_> {
    crate::decide::celval::value(v)
}

#[test]
fn large_approvals_need_a_lead() {
    let set = PolicySet::default_set(&playbook()).unwrap();
    let signal = json!({"type": "approval.requested", "data": {"amount": 75000}});
    let context = json!({"tier": "silver", "open_escalation": false, "services": {}});
    let v = set.evaluate(
        "approval.requested",
        &*cel(&signal),
        ContextView::new(&context),
        &[],
    );
    assert!(v.require_review);
    assert_eq!(v.review_role, Some(Role::Lead));
    assert!(v.forbidden.contains_key("auto_approve"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
}

/// An amount that is not a number, null or a list makes the lead rule
/// fail: it is applied as if it had fired, and the error is recorded.
#[test]
fn a_rule_that_fails_on_its_input_fails_closed() {
    let set = PolicySet::default_set(&playbook()).unwrap();
    let context = json!({"tier": "silver", "open_escalation": false, "services": {}});
    for amount in [json!("abc"), json!(null), json!([75000]), json!({"v": 1})] {
        let signal = json!({"type": "approval.requested", "data": {"amount": amount}});
        let v = set.evaluate(
            "approval.requested",
            &*cel(&signal),
            ContextView::new(&context),
            &[],
        );
        assert!(v.require_review, "{amount}");
        assert_eq!(v.review_role, Some(Role::Lead), "{amount}");
        assert!(v.forbidden.contains_key("auto_approve"), "{amount}");
        assert!(!v.errors.is_empty(), "{amount}");
        let hit = v
            .hits
            .iter()
            .find(|h| h.rule == "finance-very-large-approval-lead")
            .unwrap();
        assert!(hit.reason.contains("rule failed"), "{}", hit.reason);
    }
}

#[test]
fn options_on_a_down_service_are_forbidden() {
    let set = PolicySet::default_set(&playbook()).unwrap();
    let signal = json!({"type": "approval.requested", "data": {"amount": 10}});
    let context = json!({"tier": "silver", "open_escalation": false,
        "services": {"payments": "down", "erp": "up"}});
    let options = [
        OptionView {
            name: "auto_approve".into(),
            value: json!({"name": "auto_approve", "services": ["payments"]}),
        },
        OptionView {
            name: "reject_request".into(),
            value: json!({"name": "reject_request", "services": []}),
        },
    ];
    let options: Vec<&OptionView> = options.iter().collect();
    let v = set.evaluate(
        "approval.requested",
        &*cel(&signal),
        ContextView::new(&context),
        &options,
    );
    assert!(v.forbidden.contains_key("auto_approve"));
    assert!(!v.forbidden.contains_key("reject_request"));
}

/// The service rule's result is reused while the option and the service
/// health are what they were, and only then.
#[test]
fn a_remembered_option_rule_follows_the_service_health() {
    let set = PolicySet::default_set(&playbook()).unwrap();
    let signal = json!({"type": "approval.requested", "data": {"amount": 10}});
    let option = |services: serde_json::Value| OptionView {
        name: "auto_approve".into(),
        value: json!({"name": "auto_approve", "services": services}),
    };
    let forbidden = |health: &str, option: &OptionView| {
        let context = json!({"tier": "silver", "services": {"payments": health}});
        let v = set.evaluate(
            "approval.requested",
            &*cel(&signal),
            ContextView::new(&context),
            &[option],
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        v.forbidden.contains_key("auto_approve")
    };
    let on_payments = option(json!(["payments"]));
    assert!(forbidden("down", &on_payments));
    assert!(forbidden("down", &on_payments), "remembered");
    assert!(!forbidden("up", &on_payments), "health changed");
    assert!(forbidden("down", &on_payments), "and back");
    // The same name with other services is another option.
    assert!(!forbidden("down", &option(json!(["erp"]))));
    let remembered = set.memo.lock().unwrap();
    let fixed: Vec<_> = set.rules.iter().filter(|r| r.fixed_by.is_some()).collect();
    assert_eq!(
        fixed.len(),
        1,
        "only no-down-services is fixed by its inputs"
    );
    assert_eq!(fixed[0].spec.id, "no-down-services");
    assert_eq!(remembered.by_rule.iter().map(|m| m.len()).sum::<usize>(), 1);
}

/// A rule that fails keeps failing from the memo, with the same error.
#[test]
fn a_remembered_failure_is_reported_each_time() {
    let text = "version = \"x\"\n[[rule]]\nid = \"odd\"\nscope = \"option\"\n\
                when = \"context.services[option.name] == 'down'\"\nforbid_option = true\nreason = \"r\"\n";
    let set = PolicySet::parse(text, "p.toml", &playbook()).unwrap();
    let signal = json!({"type": "t"});
    let context = json!({"services": {}});
    let view = OptionView {
        name: "auto_approve".into(),
        value: json!({"name": "auto_approve"}),
    };
    let first = set.evaluate("t", &*cel(&signal), ContextView::new(&context), &[&view]);
    let second = set.evaluate("t", &*cel(&signal), ContextView::new(&context), &[&view]);
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    assert!(first.errors[0].starts_with("odd: "), "{:?}", first.errors);
    assert_eq!(first.errors, second.errors);
}

#[test]
fn cel_that_does_not_compile_names_file_and_rule() {
    let text =
        "version = \"x\"\n[[rule]]\nid = \"broken\"\nwhen = \"signal.type == \"\nreason = \"r\"\n";
    let err = PolicySet::parse(text, "bad.toml", &playbook()).unwrap_err();
    assert!(
        matches!(err, PolicyError::Cel { ref rule, .. } if rule == "broken"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("bad.toml: rule `broken`"),
        "{err}"
    );
}

#[test]
fn toml_that_does_not_parse_names_the_file() {
    let err = PolicySet::parse("version = ", "bad.toml", &playbook()).unwrap_err();
    assert!(matches!(err, PolicyError::Parse { .. }));
    assert!(err.to_string().starts_with("bad.toml"));
}

#[test]
fn unknown_options_are_refused() {
    let text = "version = \"x\"\n[[rule]]\nid = \"f\"\nwhen = \"true\"\nforce = \"teleport\"\nreason = \"r\"\n";
    let err = PolicySet::parse(text, "p.toml", &playbook()).unwrap_err();
    assert!(err.to_string().contains("teleport"), "{err}");
}
