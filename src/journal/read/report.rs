//! The measures of an operation, read from any journal (`signalbox
//! report`): decision quality (how flows ended, by class and option; how
//! people answered), cycle time per flow type, exceptions (escalations,
//! safe defaults, quarantines, items over budget), and paging (time to
//! acknowledge and to resolve per escalation policy, pages per person).
//! Read-only, in a few aggregate queries.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Timelike, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{open_existing, sql};
use crate::journal::JournalError;
use crate::metrics::Tally;

/// How the flows of one class and option ended.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Outcomes {
    pub class: String,
    pub option: String,
    pub flows: u64,
    /// By outcome (`within_sla`, `late`, `failed`, `reopened`, `withdrawn`,
    /// `resolved_at_source`; `open` for flows not ended, `ended` for those
    /// that ended before outcomes were journaled).
    pub by: BTreeMap<String, u64>,
    /// Within SLA among those judged (within SLA, late, failed).
    pub good: Option<f64>,
}

/// How long flows of one signal type took, created to finished.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Cycle {
    pub signal_type: String,
    pub flows: u64,
    pub p50_minutes: f64,
    pub p95_minutes: f64,
}

/// One person's notifications: in all, per week over the span read, and
/// at night (22:00 to 07:00 where their team's schedule keeps time; UTC
/// without one).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PersonLoad {
    pub person: String,
    pub team: String,
    pub notifications: u64,
    pub per_week: f64,
    pub at_night: u64,
}

/// Local hours counted as night: from 22:00, until 07:00.
const NIGHT: (u32, u32) = (22, 7);

/// Pages of one escalation policy.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Paging {
    pub policy: String,
    pub pages: u64,
    pub acknowledged: u64,
    /// Acknowledged at its first level, before it escalated: within the
    /// escalation policy's target.
    pub within_target: u64,
    /// Paged past its first level (or round) before anyone acknowledged.
    pub escalated: u64,
    pub mtta_seconds: Option<f64>,
    pub mttr_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub since: Option<DateTime<Utc>>,
    /// Decisions of signals by mode (`auto`, `rules`, `review`, `record`,
    /// …); a fan-out's per-order decisions apart.
    pub decisions: BTreeMap<String, u64>,
    pub outcomes: Vec<Outcomes>,
    /// People's answers by action, and the share of answers that
    /// overrode the proposal.
    pub answers: BTreeMap<String, u64>,
    pub override_rate: Option<f64>,
    pub cycle: Vec<Cycle>,
    pub escalated_flows: u64,
    pub over_budget: u64,
    pub quarantined: u64,
    pub paging: Vec<Paging>,
    /// The same by team (the team whose policy paged) and by service (the
    /// page's subject `service/NAME`).
    pub paging_by_team: Vec<Paging>,
    pub paging_by_service: Vec<Paging>,
    /// Notifications sent to each person.
    pub notified: BTreeMap<String, u64>,
    /// Each person's notifications per week and at night.
    pub people: Vec<PersonLoad>,
    /// The classes the model has taken over in apprentice mode, now, with
    /// since when (every other class is decided as policy's mode says).
    pub model_decides: BTreeMap<String, DateTime<Utc>>,
    /// The team the report is narrowed to (`--team`): its flows (a step
    /// for it), its pages, its people and its utilization.
    pub team: Option<String>,
    /// Each team's mean load against its capacity over the journal's life
    /// (the engine's sampled figures; none with `--since`).
    pub utilization: BTreeMap<String, f64>,
}

fn at(text: Option<String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&text?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The report over everything journaled at or after `since` (all, without).
pub fn report(dir: &Path, since: Option<DateTime<Utc>>) -> Result<Report, JournalError> {
    report_for(dir, since, None)
}

/// The report at or after `since`, narrowed to `team` if given.
pub fn report_for(
    dir: &Path,
    since: Option<DateTime<Utc>>,
    team: Option<&str>,
) -> Result<Report, JournalError> {
    let (conn, path) = open_existing(dir)?;
    let after = since.map(|t| t.to_rfc3339()).unwrap_or_default();
    let mut out = Report {
        since,
        team: team.map(String::from),
        ..Report::default()
    };
    // The whole journal's decisions by mode are the engine's own running
    // figures (journaled with its flushes): no scan of every decision.
    let counted = since.is_none().then(|| decisions_counted(&conn)).flatten();
    match counted {
        Some((by_mode, utilization)) => {
            out.decisions = by_mode;
            out.utilization = utilization;
        }
        None => out.decisions = decisions_by_mode(&conn, &path, &after)?,
    }
    read_flows(&conn, &path, &after, &mut out)?;
    read_answers(&conn, &path, &after, &mut out)?;
    read_pages(&conn, &path, since, &mut out)?;
    out.model_decides = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![crate::engine::apprentice::APPRENTICE_KEY],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .and_then(|text| serde_json::from_str::<crate::decide::apprentice::Journaled>(&text).ok())
        .map(|held| held.into_iter().map(|(c, h)| (c, h.since)).collect())
        .unwrap_or_default();
    if let Some(team) = team {
        out.utilization.retain(|t, _| t == team);
    }
    out.quarantined = conn
        .query_row(
            "SELECT count(*) FROM quarantine WHERE time >= ?1",
            params![after],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql(&path))?
        .max(0) as u64;
    Ok(out)
}

/// Decisions by mode and each team's utilization as the engine's
/// journaled figures count them, if they read.
type Counted = (BTreeMap<String, u64>, BTreeMap<String, f64>);

fn decisions_counted(conn: &rusqlite::Connection) -> Option<Counted> {
    let text: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'metrics'", [], |r| {
            r.get(0)
        })
        .ok()?;
    let m: crate::metrics::Metrics = serde_json::from_str(&text).ok()?;
    let t = &m.total;
    let by_mode = [
        ("auto", t.auto),
        ("forced", t.forced),
        ("rules", t.rules),
        ("review", t.review),
        ("record", t.record),
    ];
    let by_mode = by_mode
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let samples = t.utilisation_samples.max(1) as f64;
    let utilization = t
        .utilisation_sum
        .iter()
        .map(|(team, sum)| (team.clone(), sum / samples))
        .collect();
    Some((by_mode, utilization))
}

/// Decisions by mode at or after `after`, read from each decision: those
/// of signals, as the engine counts them (a fan-out's per-order decisions,
/// which name a parent, apart).
fn decisions_by_mode(
    conn: &rusqlite::Connection,
    path: &Path,
    after: &str,
) -> Result<BTreeMap<String, u64>, JournalError> {
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(body, '$.mode'), count(*) FROM audit
             WHERE kind = 'decision' AND time >= ?1 AND instr(body, '\"parent\":') = 0
             GROUP BY 1",
        )
        .map_err(sql(path))?;
    let rows = stmt
        .query_map(params![after], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql(path))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (mode, n) = row.map_err(sql(path))?;
        out.insert(mode.unwrap_or_else(|| "?".into()), n.max(0) as u64);
    }
    Ok(out)
}

/// Outcomes by class and option, cycle times by type, flows escalated.
fn read_flows(
    conn: &rusqlite::Connection,
    path: &Path,
    after: &str,
    out: &mut Report,
) -> Result<(), JournalError> {
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(body, '$.class'), json_extract(body, '$.option'),
                    json_extract(body, '$.signal_type'), json_extract(body, '$.created'),
                    json_extract(body, '$.finished'), json_extract(body, '$.outcome'),
                    json_extract(body, '$.escalated')
             FROM flows WHERE json_extract(body, '$.created') >= ?1
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(body, '$.steps')
                    WHERE json_extract(value, '$.assignee.team') = ?2))",
        )
        .map_err(sql(path))?;
    let mut rows = stmt.query(params![after, out.team]).map_err(sql(path))?;
    let mut outcomes: BTreeMap<(String, String), Outcomes> = BTreeMap::new();
    let mut cycles: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    while let Some(r) = rows.next().map_err(sql(path))? {
        let text = |i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default);
        let (class, option, kind) = (
            text(0).map_err(sql(path))?,
            text(1).map_err(sql(path))?,
            text(2).map_err(sql(path))?,
        );
        let created = at(r.get(3).map_err(sql(path))?);
        let finished = at(r.get(4).map_err(sql(path))?);
        let outcome: Option<String> = r.get(5).map_err(sql(path))?;
        let escalated: Option<i64> = r.get(6).map_err(sql(path))?;
        out.escalated_flows += u64::from(escalated == Some(1));
        let entry = outcomes
            .entry((class.clone(), option.clone()))
            .or_insert_with(|| Outcomes {
                class,
                option,
                ..Outcomes::default()
            });
        entry.flows += 1;
        // Flows that ended before outcomes were journaled say so.
        let said = outcome.unwrap_or_else(|| match finished {
            Some(_) => "ended".into(),
            None => "open".into(),
        });
        *entry.by.entry(said).or_default() += 1;
        if let (Some(c), Some(f)) = (created, finished) {
            cycles
                .entry(kind)
                .or_default()
                .push((f - c).num_seconds() as f64 / 60.0);
        }
    }
    for o in outcomes.values_mut() {
        let n = |k: &str| o.by.get(k).copied().unwrap_or(0);
        let judged = n("within_sla") + n("late") + n("failed") + n("reopened");
        o.good = Tally::ratio(n("within_sla"), judged);
    }
    out.outcomes = outcomes.into_values().collect();
    out.cycle = cycles
        .into_iter()
        .map(|(signal_type, mut m)| {
            m.sort_by(f64::total_cmp);
            let q = |p: f64| m[((m.len() as f64 * p).ceil() as usize).clamp(1, m.len()) - 1];
            Cycle {
                signal_type,
                flows: m.len() as u64,
                p50_minutes: q(0.50),
                p95_minutes: q(0.95),
            }
        })
        .collect();
    Ok(())
}

/// People's answers (the system's own actions apart), and items over
/// budget.
fn read_answers(
    conn: &rusqlite::Connection,
    path: &Path,
    after: &str,
    out: &mut Report,
) -> Result<(), JournalError> {
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(body, '$.action'), json_extract(body, '$.actor.role'),
                    json_extract(body, '$.note')
             FROM audit WHERE kind = 'review' AND time >= ?1",
        )
        .map_err(sql(path))?;
    let mut rows = stmt.query(params![after]).map_err(sql(path))?;
    while let Some(r) = rows.next().map_err(sql(path))? {
        let action: Option<String> = r.get(0).map_err(sql(path))?;
        let role: Option<String> = r.get(1).map_err(sql(path))?;
        let note: Option<String> = r.get(2).map_err(sql(path))?;
        // An action with data ({"override": …}) reads as its JSON text.
        let name = action.as_deref().map_or("?", |a| {
            let a = a.trim_start_matches("{\"");
            a.split('"').next().unwrap_or(a)
        });
        if note
            .as_deref()
            .is_some_and(|n| n.contains("over review budget"))
        {
            out.over_budget += 1;
        }
        if role.as_deref() == Some("system") && name != "safe_default" {
            continue;
        }
        *out.answers.entry(name.to_string()).or_default() += 1;
    }
    let n = |k: &str| out.answers.get(k).copied().unwrap_or(0);
    out.override_rate = Tally::ratio(n("override"), n("approve") + n("override") + n("reject"));
    Ok(())
}

/// Time to acknowledge and to resolve per policy; notifications per
/// person.
fn read_pages(
    conn: &rusqlite::Connection,
    path: &Path,
    since: Option<DateTime<Utc>>,
    out: &mut Report,
) -> Result<(), JournalError> {
    let roster = super::roster(path.parent().unwrap_or(path)).ok().flatten();
    // The team whose policy each policy is.
    let team_of: BTreeMap<String, String> = roster
        .as_ref()
        .map(|r| {
            r.team_policies
                .iter()
                .map(|(t, p)| (p.clone(), t.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut at_night: BTreeMap<String, u64> = BTreeMap::new();
    let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    let mut stmt = conn.prepare("SELECT body FROM pages").map_err(sql(path))?;
    let mut rows = stmt.query([]).map_err(sql(path))?;
    let (mut policies, mut teams, mut services) = (Sums::new(), Sums::new(), Sums::new());
    while let Some(r) = rows.next().map_err(sql(path))? {
        let body: String = r.get(0).map_err(sql(path))?;
        // A page that does not read is left out of the figures.
        let Ok(page) = serde_json::from_str::<crate::paging::Page>(&body) else {
            continue;
        };
        if since.is_some_and(|s| page.opened < s) {
            continue;
        }
        let team = team_of.get(&page.policy).unwrap_or(&page.policy);
        if out.team.as_ref().is_some_and(|t| t != team) {
            continue;
        }
        count_page(&mut policies, &page.policy, &page);
        count_page(&mut teams, team, &page);
        if let Some(service) = page.subject.strip_prefix("service/") {
            count_page(&mut services, service, &page);
        }
        for a in &page.attempts {
            *out.notified.entry(a.person.clone()).or_default() += 1;
            let zone = zone_of(roster.as_ref(), &a.person);
            let hour = a.at.with_timezone(&zone).hour();
            let night = hour >= NIGHT.0 || hour < NIGHT.1;
            *at_night.entry(a.person.clone()).or_default() += u64::from(night);
            span = Some(match span {
                None => (a.at, a.at),
                Some((first, last)) => (first.min(a.at), last.max(a.at)),
            });
        }
    }
    // Per week over the span read (a week at least: a day's pages are not
    // scaled up to a week's).
    let weeks = span.map_or(1.0, |(first, last)| {
        let from = since.map_or(first, |s| s.min(first));
        ((last - from).num_seconds() as f64 / (7.0 * 86_400.0)).max(1.0)
    });
    out.people = out
        .notified
        .iter()
        .map(|(person, &n)| PersonLoad {
            person: person.clone(),
            team: roster
                .as_ref()
                .and_then(|r| r.people.get(person))
                .map(|p| p.team.clone())
                .unwrap_or_default(),
            notifications: n,
            per_week: n as f64 / weeks,
            at_night: at_night.get(person).copied().unwrap_or(0),
        })
        .collect();
    out.paging = means(policies);
    out.paging_by_team = means(teams);
    out.paging_by_service = means(services);
    Ok(())
}

/// The time zone a person's night is read in: their team's first
/// schedule's, UTC without one.
fn zone_of(roster: Option<&crate::paging::Roster>, person: &str) -> chrono_tz::Tz {
    let Some(roster) = roster else {
        return chrono_tz::UTC;
    };
    let team = roster.people.get(person).map(|p| p.team.as_str());
    roster
        .schedules
        .values()
        .find(|s| Some(s.team.as_str()) == team)
        .map_or(chrono_tz::UTC, |s| s.timezone)
}

/// A row's count, and its sums of seconds to acknowledge and to resolve.
type Sums = BTreeMap<String, (Paging, f64, f64, u64)>;

fn count_page(by: &mut Sums, name: &str, page: &crate::paging::Page) {
    let (row, ack_sum, res_sum, resolved) = by.entry(name.to_string()).or_insert_with(|| {
        let row = Paging {
            policy: name.to_string(),
            ..Paging::default()
        };
        (row, 0.0, 0.0, 0)
    });
    row.pages += 1;
    let escalated = page.level > 0 || page.round > 0;
    row.escalated += u64::from(escalated);
    row.within_target += u64::from(page.acknowledged.is_some() && !escalated);
    if let Some((_, t)) = &page.acknowledged {
        row.acknowledged += 1;
        *ack_sum += (*t - page.opened).num_milliseconds() as f64 / 1e3;
    }
    if let Some((_, t)) = &page.resolved {
        *resolved += 1;
        *res_sum += (*t - page.opened).num_milliseconds() as f64 / 1e3;
    }
}

fn means(by: Sums) -> Vec<Paging> {
    by.into_values()
        .map(|(mut row, ack, res, resolved)| {
            row.mtta_seconds = (row.acknowledged > 0).then(|| ack / row.acknowledged as f64);
            row.mttr_seconds = (resolved > 0).then(|| res / resolved as f64);
            row
        })
        .collect()
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1} %", v * 100.0));
    let list = |m: &BTreeMap<String, u64>| {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(" · ")
        }
    };
    let mut s = match r.since {
        Some(t) => format!("since {}", t.format("%Y-%m-%d %H:%M UTC")),
        None => "the whole journal".to_string(),
    };
    match &r.team {
        Some(team) => s.push_str(&format!(
            ", team {team} (its flows, pages, people and load; decisions and answers of all)\n"
        )),
        None => s.push('\n'),
    }
    s.push_str(&format!("decisions of signals: {}\n", list(&r.decisions)));
    s.push_str("decision quality (how flows ended):\n");
    for o in &r.outcomes {
        s.push_str(&format!(
            "  {:<14} {:<20} {:>6} flows, within SLA {:>7}  ({})\n",
            o.class,
            o.option,
            o.flows,
            pct(o.good),
            list(&o.by)
        ));
    }
    s.push_str(&format!(
        "people's answers: {}; override rate {}\n",
        list(&r.answers),
        pct(r.override_rate)
    ));
    s.push_str("cycle time (created to finished):\n");
    for c in &r.cycle {
        s.push_str(&format!(
            "  {:<24} {:>6} flows, p50 {:.1} min, p95 {:.1} min\n",
            c.signal_type, c.flows, c.p50_minutes, c.p95_minutes
        ));
    }
    s.push_str(&format!(
        "exceptions: {} flows escalated, {} safe defaults, {} items over budget, {} quarantined\n",
        r.escalated_flows,
        r.answers.get("safe_default").copied().unwrap_or(0),
        r.over_budget,
        r.quarantined
    ));
    for (title, rows) in [
        ("paging by escalation policy", &r.paging),
        ("by team", &r.paging_by_team),
        ("by service", &r.paging_by_service),
    ] {
        s.push_str(&format!("{title}:\n"));
        for p in rows {
            let secs = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.0} s"));
            s.push_str(&format!(
                "  {:<20} {:>5} pages, {} acknowledged ({} within target), {} escalated, MTTA {}, MTTR {}\n",
                p.policy,
                p.pages,
                p.acknowledged,
                p.within_target,
                p.escalated,
                secs(p.mtta_seconds),
                secs(p.mttr_seconds)
            ));
        }
    }
    if !r.utilization.is_empty() {
        let teams: Vec<String> = r
            .utilization
            .iter()
            .map(|(t, u)| format!("{t} {:.0} %", u * 100.0))
            .collect();
        s.push_str(&format!(
            "utilization against capacity: {}\n",
            teams.join(" · ")
        ));
    }
    s.push_str("notifications per person:\n");
    for p in &r.people {
        s.push_str(&format!(
            "  {:<20} {:<14} {:>5} in all, {:.1} a week, {} at night\n",
            p.person, p.team, p.notifications, p.per_week, p.at_night
        ));
    }
    if !r.model_decides.is_empty() {
        s.push_str(&format!(
            "apprentice mode: the model decides {} (each switch: `model_mode` in the audit)\n",
            r.model_decides
                .iter()
                .map(|(c, since)| format!("{c} since {}", since.format("%Y-%m-%d %H:%M")))
                .collect::<Vec<_>>()
                .join(" · ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use crate::testkit::{alert, critical, starter};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Two critical alerts page the SRE on call, one at 03:00 in Berlin
    /// (night where their schedule keeps time) and one at 15:00; the
    /// report counts each person's notifications, per week and at night,
    /// and `--team` narrows it to the team's flows, pages and people.
    #[test]
    fn pages_per_person_read_per_week_and_at_night_and_narrow_to_a_team() {
        let dir = tempfile::tempdir().unwrap();
        // 02:00 UTC is 03:00 in Berlin in winter.
        let night = utc("2026-12-07T02:00:00Z");
        let day = utc("2026-12-07T14:00:00Z");
        let mut engine = starter(dir.path(), night);
        for (id, fp, service, at) in [("c1", "f1", "api", night), ("c2", "f2", "web", day)] {
            engine.ingest(critical(id, fp, service, at), at);
            engine.tick(at);
            engine.tick(at + Duration::seconds(1));
            // The night's page is acknowledged at its first level; the
            // day's is left to escalate past it (after 5 minutes).
            if id == "c1" {
                let dana = crate::review::Actor::new("dana", crate::decide::policy::Role::Operator);
                let page = engine.pages(true).first().map(|p| p.id.clone()).unwrap();
                let ack = crate::engine::PageAction::Acknowledge;
                let at = at + Duration::minutes(2);
                engine.page_act(&page, ack, &dana, at).unwrap();
            }
        }
        engine.tick(day + Duration::minutes(6));
        engine.flush().unwrap().wait().unwrap();
        let data = dir.path().join("data");
        let r = super::report(&data, None).unwrap();
        let sre = &r.paging_by_team[0];
        assert_eq!(
            (
                sre.pages,
                sre.acknowledged,
                sre.within_target,
                sre.escalated
            ),
            (2, 1, 1, 1)
        );
        let first = r.people.first().expect("someone was notified");
        assert_eq!(first.team, "sre", "{r:?}");
        let all: u64 = r.people.iter().map(|p| p.notifications).sum();
        let nights: u64 = r.people.iter().map(|p| p.at_night).sum();
        assert!(all >= 2, "{:?}", r.people);
        // The night's page went to one person once; the day's are by day.
        assert_eq!(nights, 1, "{:?}", r.people);
        // Under a week read: a week's worth is what was sent.
        assert!(
            r.people
                .iter()
                .all(|p| p.per_week == p.notifications as f64)
        );
        let text = super::render(&r);
        assert!(text.contains("a week"), "{text}");
        let sre = super::report_for(&data, None, Some("sre")).unwrap();
        assert_eq!(sre.team.as_deref(), Some("sre"));
        assert_eq!(sre.paging_by_team.len(), 1);
        assert!(
            sre.outcomes.iter().all(|o| o.class == "incident"),
            "{:?}",
            sre.outcomes
        );
        let support = super::report_for(&data, None, Some("support")).unwrap();
        assert!(support.people.is_empty() && support.paging.is_empty());
        assert!(support.outcomes.is_empty(), "{:?}", support.outcomes);
        assert!(super::render(&support).contains("team support"));
    }

    /// A day at a service desk on the starter deployment: one ticket
    /// resolved in time, one after its 4-hour SLA, one whose resolution
    /// failed, a warning alert that resolved at the source while it waited
    /// for a person, and a critical alert paged and resolved. The report
    /// reads back what was done, and `--team support` only the tickets.
    #[test]
    fn the_report_reads_back_what_a_day_of_work_did() {
        use crate::flow::{TaskAction, TaskFilter};
        let dir = tempfile::tempdir().unwrap();
        let start = utc("2026-12-07T08:00:00Z");
        let at = |m: i64| start + Duration::minutes(m);
        let mut engine = starter(dir.path(), start);
        let ticket = |id: &str| {
            let event = serde_json::json!({
                "specversion": "1.0", "id": id, "source": "desk", "type": "ticket.opened",
                "subject": format!("ticket/{id}"), "data": {"ticket": id, "summary": "printer"},
            });
            crate::signal::Signal::from_value(event, start).unwrap()
        };
        for id in ["t1", "t2", "t3"] {
            engine.ingest(ticket(id), at(0));
        }
        engine.ingest(alert("w1", "alert.firing", "fw", "web", at(0)), at(0));
        engine.ingest(critical("c1", "fc", "api", at(0)), at(0));
        engine.tick(at(0));
        let ann = crate::review::Actor::new("ann", crate::decide::policy::Role::Operator);
        // Each ticket's open task (acknowledge, then resolve), by ticket.
        let task_of = |engine: &crate::engine::Engine, id: &str| {
            let flow = engine
                .flows
                .flows
                .values()
                .find(|f| f.signal_id == id)
                .map(|f| f.id.clone())
                .unwrap();
            engine
                .tasks(&TaskFilter::default())
                .into_iter()
                .find(|t| t.flow == flow && t.state == "open")
                .map(|t| t.id)
        };
        let act = |engine: &mut crate::engine::Engine, id: &str, action: TaskAction, m: i64| {
            let task = task_of(engine, id).expect("an open task");
            engine
                .act_on_task(&task, &action, &ann, "done", at(m))
                .unwrap();
        };
        for id in ["t1", "t2", "t3"] {
            act(&mut engine, id, TaskAction::Complete, 5);
        }
        engine.ingest(alert("rw", "alert.resolved", "fw", "web", at(6)), at(6));
        engine.ingest(alert("rc", "alert.resolved", "fc", "api", at(20)), at(20));
        act(&mut engine, "t1", TaskAction::Complete, 30);
        act(&mut engine, "t3", TaskAction::Fail, 40);
        // Its acknowledgement is withdrawn: a task of its own.
        engine.tick(at(41));
        act(&mut engine, "t3", TaskAction::Complete, 45);
        act(&mut engine, "t2", TaskAction::Complete, 300);
        engine.flush().unwrap().wait().unwrap();
        let data = dir.path().join("data");
        let r = super::report(&data, None).unwrap();
        let by = |class: &str, outcome: &str| -> u64 {
            r.outcomes
                .iter()
                .filter(|o| o.class == class)
                .filter_map(|o| o.by.get(outcome))
                .sum()
        };
        assert_eq!(
            [
                by("service_desk", "within_sla"),
                by("service_desk", "late"),
                by("service_desk", "failed")
            ],
            [1, 1, 1],
            "{:?}",
            r.outcomes
        );
        assert_eq!(
            [
                by("incident", "within_sla"),
                by("incident", "resolved_at_source")
            ],
            [1, 1],
            "{:?}",
            r.outcomes
        );
        let desk = r
            .outcomes
            .iter()
            .find(|o| o.class == "service_desk")
            .unwrap();
        assert_eq!(desk.good, Some(1.0 / 3.0));
        let tickets = r
            .cycle
            .iter()
            .find(|c| c.signal_type == "ticket.opened")
            .unwrap();
        assert_eq!(tickets.flows, 3);
        assert_eq!((tickets.p50_minutes, tickets.p95_minutes), (45.0, 300.0));
        let api = r
            .paging_by_service
            .iter()
            .find(|p| p.policy == "api")
            .unwrap();
        assert_eq!(api.mttr_seconds, Some(1200.0));
        let support = super::report_for(&data, None, Some("support")).unwrap();
        assert!(support.outcomes.iter().all(|o| o.class == "service_desk"));
        assert_eq!(support.outcomes.iter().map(|o| o.flows).sum::<u64>(), 3);
    }
}
