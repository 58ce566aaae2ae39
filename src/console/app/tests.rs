//! `App::update`: input in, effects out, over a hand-made state.

use super::*;
use crate::console::fixture;
use crate::console::keymap::KeyAction;
use crate::review::Action;

fn key(action: KeyAction) -> Input {
    Input::Key(action)
}

fn on_review() -> App {
    let mut app = fixture::app();
    app.update(Input::Key(KeyAction::NextView));
    app.view = View::Review;
    app
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        let event = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
        app.update(Input::Text(event));
    }
}

#[test]
fn the_fixture_has_two_items_the_newest_deadline_last() {
    let app = on_review();
    let ids: Vec<&str> = (0..2)
        .filter_map(|i| app.review_at(i))
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["R0000002", "R0000004"]);
}

#[test]
fn approve_asks_for_a_note_then_acts_with_it() {
    let mut app = on_review();
    assert!(app.update(key(KeyAction::Approve)).is_empty());
    assert!(matches!(app.focus, Focus::Dialog(_)));
    typed(&mut app, "checked stock");
    let effects = app.update(key(KeyAction::Confirm));
    assert_eq!(
        effects,
        vec![Effect::Act {
            review_id: "R0000002".into(),
            action: Action::Approve,
            note: "checked stock".into(),
        }]
    );
    assert!(matches!(app.focus, Focus::Normal));
}

#[test]
fn override_chooses_among_the_other_allowed_options() {
    let mut app = on_review();
    app.update(key(KeyAction::Down));
    app.update(key(KeyAction::Override));
    // The only other allowed option; down stays on it.
    app.update(key(KeyAction::Down));
    app.update(key(KeyAction::Confirm));
    typed(&mut app, "vip");
    let effects = app.update(key(KeyAction::Confirm));
    assert_eq!(
        effects,
        vec![Effect::Act {
            review_id: "R0000004".into(),
            action: Action::Override {
                option: "expedite".into()
            },
            note: "vip".into(),
        }]
    );
}

#[test]
fn escalate_snooze_and_claim_act_at_once() {
    for (k, action) in [
        (KeyAction::Escalate, Action::Escalate),
        (KeyAction::Snooze, Action::Snooze { minutes: 15 }),
        (KeyAction::Claim, Action::Claim),
    ] {
        let mut app = on_review();
        let effects = app.update(key(k));
        assert!(
            matches!(&effects[..], [Effect::Act { action: a, .. }] if *a == action),
            "{k:?}: {effects:?}"
        );
    }
}

#[test]
fn review_keys_do_nothing_outside_the_review_view() {
    let mut app = fixture::app();
    app.view = View::Flows;
    assert!(app.update(key(KeyAction::Approve)).is_empty());
    assert!(matches!(app.focus, Focus::Normal));
}

#[test]
fn quitting_from_a_dialog_asks_first() {
    let mut app = on_review();
    app.update(key(KeyAction::Reject));
    assert!(app.update(key(KeyAction::Quit)).is_empty());
    assert!(matches!(app.focus, Focus::ConfirmQuit));
    // Any other key stays.
    assert!(app.update(Input::Char('n')).is_empty());
    assert!(matches!(app.focus, Focus::Normal));
    app.update(key(KeyAction::Reject));
    app.update(key(KeyAction::Quit));
    assert_eq!(app.update(key(KeyAction::Confirm)), vec![Effect::Quit]);
}

#[test]
fn cancel_leaves_a_dialog_without_acting() {
    let mut app = on_review();
    app.update(key(KeyAction::Approve));
    assert!(app.update(key(KeyAction::Cancel)).is_empty());
    assert!(matches!(app.focus, Focus::Normal));
    assert_eq!(
        app.status_line,
        Some(("action cancelled".to_string(), false))
    );
}

#[test]
fn opening_a_flow_asks_for_its_explanation() {
    let mut app = fixture::app();
    app.view = View::Flows;
    let effects = app.update(key(KeyAction::Open));
    assert!(
        matches!(&effects[..], [Effect::Explain { decision_id }] if decision_id.starts_with('D')),
        "{effects:?}"
    );
    // The explanation comes back as a message and opens the detail.
    app.update(Message::Explained {
        title: "decision D0000004".into(),
        text: "why\nbecause".into(),
    });
    assert!(matches!(&app.focus, Focus::Detail(d) if d.lines.len() == 2));
}

#[test]
fn commands_go_to_views_switch_themes_or_say_what_exists() {
    let mut app = fixture::app();
    let run = |app: &mut App, text: &str| {
        app.update(key(KeyAction::Command));
        for c in text.chars() {
            app.update(Input::Char(c));
        }
        app.update(key(KeyAction::Confirm))
    };
    assert!(run(&mut app, "health").is_empty());
    assert_eq!(app.view, View::Health);
    assert_eq!(
        run(&mut app, "theme light"),
        vec![Effect::SwitchTheme("light".into())]
    );
    run(&mut app, "nowhere");
    let (line, error) = app.status_line.clone().unwrap_or_default();
    assert!(error && line.contains("no view `nowhere`"), "{line}");
    assert_eq!(run(&mut app, "quit"), vec![Effect::Quit]);
}

#[test]
fn answers_from_outside_land_on_the_status_line() {
    let mut app = fixture::app();
    app.update(Message::Acted(Err("item R1 was already decided".into())));
    assert_eq!(
        app.status_line,
        Some(("refused: item R1 was already decided".to_string(), true))
    );
    app.update(Message::Theme(Err("no theme `x`".into())));
    assert_eq!(app.status_line, Some(("no theme `x`".to_string(), true)));
}

#[test]
fn a_filter_narrows_the_table_and_back_clears_it() {
    let mut app = fixture::app();
    app.view = View::Signals;
    assert_eq!(app.rows(View::Signals).len(), 4);
    app.update(key(KeyAction::Filter));
    for c in "ticket".chars() {
        app.update(Input::Char(c));
    }
    app.update(key(KeyAction::Confirm));
    assert_eq!(app.rows(View::Signals).len(), 1);
    app.update(key(KeyAction::Back));
    assert_eq!(app.rows(View::Signals).len(), 4);
}

#[test]
fn task_actions_ask_for_a_note_and_act_on_the_selected_task() {
    use crate::flow::TaskAction;
    let mut app = fixture::app();
    app.view = View::Tasks;
    assert!(app.update(key(KeyAction::Complete)).is_empty());
    typed(&mut app, "called back");
    assert_eq!(
        app.update(key(KeyAction::Confirm)),
        vec![Effect::TaskAct {
            task_id: "F0000003.0".into(),
            action: TaskAction::Complete,
            note: "called back".into(),
        }]
    );
    // The second task, handed to the first other team, with a note.
    app.update(key(KeyAction::Down));
    app.update(key(KeyAction::Reassign));
    app.update(key(KeyAction::Confirm));
    typed(&mut app, "needs stock");
    assert_eq!(
        app.update(key(KeyAction::Confirm)),
        vec![Effect::TaskAct {
            task_id: "F0000005.0".into(),
            action: TaskAction::Reassign {
                team: Some("support".into()),
                agent: None,
            },
            note: "needs stock".into(),
        }]
    );
    // Review keys are not task keys.
    app.update(key(KeyAction::Approve));
    assert!(matches!(app.focus, Focus::Normal));
}

/// The cursor follows its item when another arrives ahead of it, and when
/// someone else decides it the status line says who.
#[test]
fn the_cursor_follows_the_item_not_the_row() {
    use crate::engine::EngineEvent;
    use crate::review::{Actor, ReviewAction};
    let mut app = on_review();
    app.update(key(KeyAction::Down));
    let chosen = app.selected_review().unwrap().id.clone();
    assert_eq!(chosen, "R0000004");
    // An item due sooner arrives: it sorts first, the cursor stays on R0000004.
    let mut sooner = app.reviews["R0000002"].clone();
    sooner.id = "R0000009".into();
    sooner.deadline -= chrono::Duration::minutes(30);
    app.update(Message::Engine(super::super::link::Update::Events(vec![
        EngineEvent::ReviewOpened(sooner),
    ])));
    assert_eq!(app.review_at(0).unwrap().id, "R0000009");
    assert_eq!(app.selected_review().unwrap().id, chosen);
    // Decided by a colleague: said, and the cursor stays on its row.
    let mut item = app.reviews[&chosen].clone();
    let record = ReviewAction {
        review_id: item.id.clone(),
        decision_id: item.decision.id.clone(),
        actor: Actor::new("lena", crate::decide::policy::Role::Lead),
        action: Action::Approve,
        note: String::new(),
        time: item.created,
        advised: None,
    };
    item.outcome = Some(record.clone());
    app.update(Message::Engine(super::super::link::Update::Events(vec![
        EngineEvent::ReviewAction {
            item,
            action: record,
        },
    ])));
    let (line, _) = app.status_line.clone().unwrap();
    assert!(line.contains("R0000004") && line.contains("lena"), "{line}");
    assert!(!app.reviews.contains_key(&chosen));
}

/// Acting on an item someone else holds asks first; the dialog names the
/// item and its subject.
#[test]
fn acting_on_someone_elses_claim_asks_first() {
    let mut app = on_review();
    let id = app.selected_review().unwrap().id.clone();
    if let Some(item) = app.reviews.get_mut(&id) {
        item.claimed_by = Some("lena".into());
    }
    app.update(key(KeyAction::Approve));
    assert!(matches!(app.focus, Focus::Normal));
    let (line, _) = app.status_line.clone().unwrap();
    assert!(line.contains("held by lena"), "{line}");
    app.update(key(KeyAction::Approve));
    let Focus::Dialog(d) = &app.focus else {
        panic!("asked twice, the dialog opens")
    };
    assert_eq!(d.target, id);
    assert_eq!(d.about, "order/o2");
}

/// A claim lapses after the server's claim expiry: the holder is shown
/// with how long they have held it, and once it lapsed others act without
/// being asked twice.
#[test]
fn a_claim_lapses_after_the_claim_expiry() {
    let mut app = on_review();
    let id = app.selected_review().unwrap().id.clone();
    let now = app.status.as_ref().unwrap().now;
    if let Some(item) = app.reviews.get_mut(&id) {
        item.claimed_by = Some("lena".into());
        item.claimed_at = Some(now - chrono::Duration::minutes(4));
    }
    let item = app.reviews[&id].clone();
    assert_eq!(
        app.holder(&item),
        Some(("lena", Some(now - chrono::Duration::minutes(4))))
    );
    app.update(key(KeyAction::Approve));
    assert!(matches!(app.focus, Focus::Normal), "asked first while held");
    app.update(key(KeyAction::Cancel));
    // Sixteen minutes on, past the 15-minute expiry: nobody holds it.
    if let Some(item) = app.reviews.get_mut(&id) {
        item.claimed_at = Some(now - chrono::Duration::minutes(16));
    }
    let item = app.reviews[&id].clone();
    assert_eq!(app.holder(&item), None);
    app.confirm_held = None;
    app.update(key(KeyAction::Approve));
    assert!(
        matches!(app.focus, Focus::Dialog(_)),
        "a lapsed claim is not asked about"
    );
}

/// Marked items are approved with one note, each as its own action; "all
/// like this" marks the items of the same type and proposal; only approve
/// and reject act on marks; the back key clears them.
#[test]
fn marked_items_are_approved_with_one_note() {
    let mut app = on_review();
    app.update(key(KeyAction::MarkLike));
    assert_eq!(app.marked.iter().collect::<Vec<_>>(), ["R0000002"]);
    app.update(key(KeyAction::Down));
    app.update(key(KeyAction::Mark));
    assert_eq!(app.marked.len(), 2);
    app.update(key(KeyAction::Override));
    assert!(
        matches!(app.focus, Focus::Normal),
        "override is one item at a time"
    );
    assert!(
        app.status_line
            .clone()
            .unwrap()
            .0
            .contains("approved or rejected")
    );
    app.update(key(KeyAction::Approve));
    let Focus::Dialog(d) = &app.focus else {
        panic!("approve on marks opens one dialog")
    };
    assert_eq!(d.target, "2 items");
    typed(&mut app, "batch checked");
    let effects = app.update(key(KeyAction::Confirm));
    assert_eq!(
        effects,
        vec![Effect::ActOnEach {
            review_ids: vec!["R0000002".into(), "R0000004".into()],
            action: Action::Approve,
            note: "batch checked".into(),
        }]
    );
    assert!(app.marked.is_empty(), "acted on, the marks are gone");
    // Marked again, then cleared with the back key: approve acts on one.
    app.update(key(KeyAction::Mark));
    app.update(key(KeyAction::Back));
    assert!(app.marked.is_empty());
    assert_eq!(app.view, View::Review, "the first back clears marks only");
}

/// One answer for many: who did it, or which were refused and why.
#[test]
fn a_bulk_answer_counts_what_was_done_and_names_refusals() {
    use crate::console::backend::acted;
    let ok = |id: &str| (id.to_string(), Ok("ann".to_string()));
    assert_eq!(
        acted("approve", vec![ok("R1")]),
        Ok("approve R1 by ann".into())
    );
    assert_eq!(
        acted("approve", vec![ok("R1"), ok("R2")]),
        Ok("approve 2 items by ann".into())
    );
    let refused = ("R3".to_string(), Err("already decided".to_string()));
    assert_eq!(
        acted("approve", vec![refused.clone()]),
        Err("already decided".into()),
        "one refusal is the reason as given"
    );
    assert_eq!(
        acted("reject", vec![ok("R1"), refused]),
        Err("reject: 1 of 2 done, 1 refused (R3: already decided)".into())
    );
}

/// One key on a page, an incident or a silence acts at once on the row
/// under the cursor; an override on the On-call view asks who and for how
/// long, and refuses what it cannot read.
#[test]
fn pages_incidents_and_silences_act_with_one_key() {
    let mut app = fixture::app();
    app.view = View::Pages;
    assert_eq!(
        app.update(key(KeyAction::Acknowledge)),
        vec![Effect::PageAct {
            page_id: "P0000002".into(),
            action: crate::engine::PageAction::Acknowledge,
        }]
    );
    app.view = View::Incidents;
    assert_eq!(
        app.update(key(KeyAction::Resolve)),
        vec![Effect::ResolveIncident {
            incident_id: "I0000002".into()
        }]
    );
    app.view = View::Silences;
    app.update(key(KeyAction::Down));
    assert_eq!(
        app.update(key(KeyAction::Expire)),
        vec![Effect::ExpireSilence {
            silence_id: "b41d07c3-0000-4000-8000-000000000002".into()
        }]
    );
    app.view = View::OnCall;
    app.update(key(KeyAction::Down));
    assert!(app.update(key(KeyAction::Override)).is_empty());
    typed(&mut app, "emil soon");
    assert!(app.update(key(KeyAction::Confirm)).is_empty());
    assert!(matches!(app.focus, Focus::Dialog(_)), "asks again");
    for _ in 0.."emil soon".len() {
        let back = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Backspace);
        app.update(Input::Text(back));
    }
    typed(&mut app, "emil 2h");
    let effects = app.update(key(KeyAction::Confirm));
    let [
        Effect::SetOverride {
            schedule,
            person,
            from,
            to,
        },
    ] = effects.as_slice()
    else {
        panic!("{effects:?}")
    };
    assert_eq!((schedule.as_str(), person.as_str()), ("sre-nights", "emil"));
    assert_eq!(*to - *from, chrono::Duration::hours(2));
}

/// "Silence like this" on an incident proposes matchers from its group,
/// asks the backend what they would match, shows it when it comes, and
/// makes the silence from a duration and a reason; it refuses a reason
/// left out.
#[test]
fn silence_like_this_counts_then_asks_for_how_long_and_why() {
    let mut app = fixture::app();
    app.view = View::Incidents;
    let effects = app.update(key(KeyAction::Silence));
    let matchers = vec![
        "type=\"alert.firing\"".to_string(),
        "subject=\"service/api-2\"".to_string(),
    ];
    assert_eq!(
        effects,
        vec![Effect::PreviewSilence {
            matchers: matchers.clone()
        }]
    );
    let preview = SilencePreview {
        open_items: 3,
        last_day: 41,
    };
    // An answer for other matchers is not this dialog's.
    app.update(Message::SilencePreview {
        matchers: vec!["x=\"y\"".into()],
        preview: Ok(preview),
    });
    let shown = |app: &App| match &app.focus {
        Focus::Dialog(d) => match &d.kind {
            DialogKind::Silence { preview, .. } => preview.clone(),
            _ => None,
        },
        _ => None,
    };
    assert_eq!(shown(&app), None);
    app.update(Message::SilencePreview {
        matchers: matchers.clone(),
        preview: Ok(preview),
    });
    assert_eq!(shown(&app), Some(Ok(preview)));
    typed(&mut app, "2h");
    assert!(app.update(key(KeyAction::Confirm)).is_empty(), "no reason");
    typed(&mut app, " known api-2 outage");
    let effects = app.update(key(KeyAction::Confirm));
    let [
        Effect::PutSilence {
            matchers: made,
            starts,
            ends,
            comment,
        },
    ] = effects.as_slice()
    else {
        panic!("{effects:?}")
    };
    assert_eq!(made, &matchers);
    assert_eq!(comment, "known api-2 outage");
    let now = app.status.as_ref().map(|s| s.now).unwrap();
    assert_eq!((*starts, *ends - now), (now, chrono::Duration::hours(2)));
}

/// Scrolling past the last row of Audit asks for the page of history
/// before the oldest decision shown, once at a time; its rows go below, and
/// the journal's beginning ends the asking.
#[test]
fn scrolling_past_the_last_audit_row_pages_further_back() {
    let mut app = fixture::app();
    app.view = View::Audit;
    let oldest = app.audit.back().map(|r| r.id.clone()).unwrap();
    let shown = app.audit.len();
    // Not at the last row yet: nothing asked.
    assert!(app.update(key(KeyAction::Top)).is_empty());
    let effects = app.update(key(KeyAction::Bottom));
    assert_eq!(
        effects,
        vec![Effect::OlderHistory {
            before: oldest.clone()
        }]
    );
    // Asked already: not again until it answers.
    assert!(app.update(key(KeyAction::Down)).is_empty());
    let older: Vec<crate::engine::EngineEvent> = (90..92)
        .flat_map(|i| {
            let s = std::sync::Arc::new(crate::testkit::signal(
                i,
                "order.placed",
                "order/o9",
                serde_json::json!({}),
            ));
            let d = crate::testkit::decision(
                i,
                &s,
                &[("standard_fulfillment", 0.7)],
                "auto",
                "operator",
            );
            [
                crate::engine::EngineEvent::Signal {
                    signal: s,
                    duplicate: false,
                },
                crate::engine::EngineEvent::Decision(std::sync::Arc::new(d)),
            ]
        })
        .collect();
    app.update(Message::Older(Ok((older, true))));
    assert_eq!(app.audit.len(), shown + 2);
    // Oldest last: D…090 below D…091.
    let last: Vec<&str> = app
        .audit
        .iter()
        .rev()
        .take(2)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(last, ["D0000090", "D0000091"]);
    let effects = app.update(key(KeyAction::Bottom));
    assert_eq!(
        effects,
        vec![Effect::OlderHistory {
            before: "D0000090".into()
        }]
    );
    app.update(Message::Older(Ok((Vec::new(), false))));
    assert!(
        app.update(key(KeyAction::Bottom)).is_empty(),
        "the beginning"
    );
    let said = app.status_line.clone().map(|s| s.0).unwrap_or_default();
    assert!(said.contains("beginning"), "{said}");
}
