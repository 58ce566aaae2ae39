//! A week of a two-layer schedule, checked hour by hour against
//! `signalbox oncall --at`: layer 1 hands off daily at 09:00 Berlin time
//! between dana and emil, layer 2 (lena) covers weekdays 09:00–17:00 and
//! wins while it does, and an override set over HTTP by a lead puts dana
//! on call for four hours of emil's Saturday. The week spans the night Berlin moves its
//! clocks forward (2027-03-28, 02:00 → 03:00): the handoff stays at 09:00
//! local time on either side, which is 08:00 UTC before and 07:00 UTC
//! after. The override outlives the server that took it (the command
//! reads it from the journal after the server has stopped).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Europe::Berlin;
use serde_json::json;

use crate::common::{self, client, json_of, serve_deployment};

const LEAD: &str = "lead-secret-1";

/// Who the schedule should name at `t`, worked out here from the rules
/// as written (not from signalbox's code).
fn expected(
    t: DateTime<Utc>,
    override_from: DateTime<Utc>,
    override_to: DateTime<Utc>,
) -> &'static str {
    if override_from <= t && t < override_to {
        return "dana";
    }
    let local = t.with_timezone(&Berlin);
    let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    if weekday && (9..17).contains(&local.hour()) {
        return "lena";
    }
    // Layer 1: turns of a day from 2027-03-22 09:00 local, dana first.
    let day = if local.hour() < 9 {
        local.date_naive() - Duration::days(1)
    } else {
        local.date_naive()
    };
    let first = NaiveDate::from_ymd_opt(2027, 3, 22).unwrap();
    match (day - first).num_days().rem_euclid(2) {
        0 => "dana",
        _ => "emil",
    }
}

#[test]
fn a_week_across_a_clock_change_matches_the_rules_hour_by_hour() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    common::init(&dir);
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let layers = r#"[[schedule.layer]]
members = ["dana", "emil"]
start = "2027-03-22 09:00"
rotation = "1d"

[[schedule.layer]]
members = ["lena"]
start = "2027-03-22 09:00"
rotation = "1w"
restrict = ["mon-fri 09:00-17:00"]

[[person]]
id = "lena"
team = "sre"
contact = { email = "lena@example.com" }
"#;
    let start = org.find("[[schedule.layer]]").unwrap();
    let end = start + org[start..].find("rotation = \"1w\"\n").unwrap() + 16;
    let org = format!("{}{layers}{}", &org[..start], &org[end..]);
    std::fs::write(dir.join("organization.toml"), &org).unwrap();

    // The override, taken by a running server from a lead, journaled.
    let (from, to) = (
        Utc.with_ymd_and_hms(2027, 3, 27, 10, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 3, 27, 14, 0, 0).unwrap(),
    );
    let s = serve_deployment(&dir, &["--token", "lead-secret-1:lead:lars"]);
    let r = client()
        .post(format!("{}/v1/oncall/overrides", s.base))
        .bearer_auth(LEAD)
        .json(&json!({
            "schedule": "sre-primary", "person": "dana",
            "from": from.to_rfc3339(), "to": to.to_rfc3339(),
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    drop(s);

    let week = Utc.with_ymd_and_hms(2027, 3, 24, 0, 0, 0).unwrap();
    let mut wrong = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for hour in 0..168 {
        let t = week + Duration::hours(hour);
        let at = t.to_rfc3339();
        let answer = json_of(
            [
                "oncall",
                "--config",
                dir.to_str().unwrap(),
                "--team",
                "sre",
                "--at",
                &at,
                "--json",
            ]
            .map(std::ffi::OsStr::new),
        );
        let person = answer["on_call"][0]["person"]
            .as_str()
            .unwrap_or("nobody")
            .to_string();
        let want = expected(t, from, to);
        seen.insert(want);
        if person != want {
            wrong.push(format!(
                "{at}: signalbox says {person}, the rules say {want} ({answer})"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} hours differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(seen.len(), 3, "the week names all three: {seen:?}");
    assert_eq!(
        (
            expected(from - Duration::hours(1), from, to),
            expected(from, from, to)
        ),
        ("emil", "dana"),
        "the override changes who is on call"
    );

    // Around the change: the handoff is 08:00 UTC before it, 07:00 after.
    let who = |t: DateTime<Utc>| expected(t, from, to);
    let sat = |h| Utc.with_ymd_and_hms(2027, 3, 27, h, 30, 0).unwrap();
    let sun = |h| Utc.with_ymd_and_hms(2027, 3, 28, h, 30, 0).unwrap();
    let mon = |h| Utc.with_ymd_and_hms(2027, 3, 29, h, 30, 0).unwrap();
    assert_ne!(who(sat(7)), who(sat(8)), "Saturday's handoff at 08:00 UTC");
    assert_ne!(who(sun(6)), who(sun(7)), "Sunday's handoff at 07:00 UTC");
    assert_eq!(
        who(mon(6)),
        who(sun(7)),
        "the same turn until Monday's handoff"
    );
}
