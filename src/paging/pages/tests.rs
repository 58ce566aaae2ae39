//! Tests of `paging::pages`.

use super::*;
use crate::paging::{EscalationPolicy, Level, Person, Rule, Target};
use chrono::{Duration, TimeZone};

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn person(id: &str) -> Person {
    Person {
        id: id.into(),
        team: "sre".into(),
        contact: [
            (Method::Slack, format!("https://chat/{id}")),
            (Method::Email, format!("{id}@example.com")),
        ]
        .into(),
        urgent: vec![
            Rule::parse("slack").unwrap(),
            Rule::parse("email after 2m").unwrap(),
        ],
        low: vec![Rule::parse("email").unwrap()],
    }
}

fn roster() -> Roster {
    let mut r = Roster::default();
    for id in ["dana", "emil", "lead"] {
        r.people.insert(id.into(), person(id));
    }
    r.policies.insert(
        "sre".into(),
        EscalationPolicy {
            id: "sre".into(),
            levels: vec![
                Level {
                    targets: vec![Target::Person("dana".into())],
                    after: Duration::minutes(5),
                },
                Level {
                    targets: vec![Target::Person("emil".into()), Target::Person("lead".into())],
                    after: Duration::minutes(10),
                },
            ],
            repeats: 1,
        },
    );
    r
}

fn opening() -> Opening {
    Opening {
        policy: "sre".into(),
        urgency: Urgency::High,
        title: "api down".into(),
        why: "alert.firing".into(),
        subject: "service/api".into(),
        decision_id: None,
        flow_id: None,
        review_id: None,
        signal_id: None,
        incident: None,
        hold: Duration::zero(),
    }
}

fn sent(sends: &[Send]) -> Vec<(String, &'static str)> {
    sends
        .iter()
        .map(|s| (s.person.clone(), s.method.as_str()))
        .collect()
}

/// Nobody acknowledges: level 1 by the rules, level 2 after its delay,
/// level 3 after level 2's, then the round again, then silence.
#[test]
fn an_unanswered_page_escalates_through_three_levels_and_repeats() {
    let mut roster = roster();
    if let Some(p) = roster.policies.get_mut("sre") {
        p.levels[1].targets = vec![Target::Person("emil".into())];
        p.levels.push(Level {
            targets: vec![Target::Person("lead".into())],
            after: Duration::minutes(3),
        });
    }
    let mut book = PageBook::default();
    let id = book.open(opening(), &roster, at(0)).unwrap();
    assert_eq!(sent(&book.tick(&roster, at(0))), [("dana".into(), "slack")]);
    assert_eq!(sent(&book.tick(&roster, at(2))), [("dana".into(), "email")]);
    assert!(book.tick(&roster, at(4)).is_empty());
    assert_eq!(sent(&book.tick(&roster, at(5))), [("emil".into(), "slack")]);
    assert_eq!(book.pages[&id].level, 1);
    assert_eq!(sent(&book.tick(&roster, at(7))), [("emil".into(), "email")]);
    assert!(book.tick(&roster, at(14)).is_empty());
    assert_eq!(
        sent(&book.tick(&roster, at(15))),
        [("lead".into(), "slack")]
    );
    assert_eq!(book.pages[&id].level, 2);
    // Round two, from level 1, once level 3's 3 minutes have passed.
    assert!(
        book.tick(&roster, at(17))
            .iter()
            .all(|s| s.person == "lead")
    );
    assert_eq!(
        sent(&book.tick(&roster, at(18))),
        [("dana".into(), "slack")]
    );
    assert_eq!((book.pages[&id].level, book.pages[&id].round), (0, 1));
    for minute in [20, 23, 25, 33, 35, 36] {
        book.tick(&roster, at(minute));
    }
    let after = book.pages[&id].attempts.len();
    assert_eq!(after, 12, "two rounds of three levels, two rules each");
    assert!(book.tick(&roster, at(90)).is_empty(), "no third round");
    assert_eq!(book.pages[&id].attempts.len(), after);
}

/// A level that reaches nobody (its schedule has a gap) pages the
/// team's lead, and the page says so; without a lead, it says that.
#[test]
fn a_level_that_reaches_nobody_pages_the_teams_lead() {
    let mut roster = roster();
    if let Some(p) = roster.policies.get_mut("sre") {
        p.levels[0].targets = vec![Target::Schedule("nights".into())];
    }
    roster.team_policies.insert("sre".into(), "sre".into());
    let mut book = PageBook::default();
    let id = book.open(opening(), &roster, at(0)).unwrap();
    assert!(book.tick(&roster, at(0)).is_empty());
    assert!(
        book.pages[&id].notes[0].contains("no lead"),
        "{:?}",
        book.pages[&id].notes
    );

    roster.team_leads.insert("sre".into(), "lead".into());
    let id = book.open(opening(), &roster, at(0)).unwrap();
    assert_eq!(sent(&book.tick(&roster, at(0))), [("lead".into(), "slack")]);
    assert!(book.pages[&id].notes[0].contains("the team's lead lead is paged"));
}

/// An acknowledgement stops the escalation for everyone; a second one
/// is refused; resolving ends it.
#[test]
fn acknowledging_stops_the_escalation() {
    let roster = roster();
    let mut book = PageBook::default();
    let id = book.open(opening(), &roster, at(0)).unwrap();
    book.tick(&roster, at(0));
    book.acknowledge(&id, "dana", at(1)).unwrap();
    assert!(
        book.tick(&roster, at(2)).is_empty(),
        "no email after the ack"
    );
    assert!(book.tick(&roster, at(30)).is_empty(), "no level 2");
    assert!(matches!(
        book.acknowledge(&id, "emil", at(3)),
        Err(PageRefused::Done { .. })
    ));
    assert_eq!(
        book.resolve(&id, "dana", at(4)).unwrap().state,
        PageState::Resolved
    );
    assert!(book.resolve(&id, "dana", at(5)).is_err());
}

/// After a restart, new pages are numbered above every page journaled,
/// resolved ones included; resolved pages past the cap leave memory.
#[test]
fn ids_are_never_given_twice_and_memory_follows_open_pages() {
    let roster = roster();
    let mut book = PageBook::default();
    book.taken("P0000041");
    assert_eq!(book.open(opening(), &roster, at(0)).unwrap(), "P0000042");
    for _ in 0..(KEPT_RESOLVED * 2 + 10) {
        let id = book.open(opening(), &roster, at(0)).unwrap();
        book.resolve(&id, "test", at(1)).unwrap();
    }
    book.tick(&roster, at(2));
    assert_eq!(
        book.pages.len(),
        KEPT_RESOLVED + 1,
        "the open page and the newest resolved"
    );
    assert!(book.pages.contains_key("P0000042"));
}

/// A failed delivery brings the person's next method forward.
#[test]
fn a_failed_channel_moves_on_to_the_next_method() {
    let roster = roster();
    let mut book = PageBook::default();
    let id = book.open(opening(), &roster, at(0)).unwrap();
    let first = book.tick(&roster, at(0));
    book.delivered(&id, first[0].attempt, Err("502 Bad Gateway".into()), at(0));
    assert_eq!(sent(&book.tick(&roster, at(0))), [("dana".into(), "email")]);
    assert!(matches!(
        book.pages[&id].attempts[0].delivery,
        Delivery::Failed(_)
    ));
}
