//! `init` and `validate`: a deployment directory started and checked.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

pub(crate) fn init(dir: &Path) -> Result<()> {
    signalbox::deploy::init(dir)?;
    println!(
        "signalbox: wrote a starter deployment in {}:",
        dir.display()
    );
    for (name, _) in signalbox::deploy::STARTER {
        println!("  {name}");
    }
    println!(
        "next: edit them, `signalbox validate {0}`, then `signalbox serve --config {0}`",
        dir.display()
    );
    Ok(())
}

/// Prints `FILE:LINE: problem` for each problem (paths under `dir`);
/// exit 1 on any, 0 with a summary when there is none.
pub(crate) fn validate(dir: &Path) -> ExitCode {
    match signalbox::deploy::Deployment::load(dir) {
        Ok(d) => {
            let world = &d.organization.world;
            println!(
                "{}: valid: {} signal types, {} options, {} steps, {} policy rules ({}), {} teams, {} agents, {} services, {} executors ({})",
                dir.display(),
                d.rules.playbook.signals.len(),
                d.rules.playbook.options.len(),
                d.rules.steps.steps.len(),
                d.rules.policy.rule_count(),
                d.rules.policy.version,
                world.teams.len(),
                world.agents.len(),
                world.services.len(),
                d.organization.executors.len(),
                d.rules.version,
            );
            warn_gaps(dir, &d, chrono::Utc::now());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems.0 {
                let file = dir.join(&p.file);
                if p.line == 0 {
                    eprintln!("{}: {}", file.display(), p.message);
                } else {
                    eprintln!("{}:{}: {}", file.display(), p.line, p.message);
                }
            }
            eprintln!("{} problem(s)", problems.0.len());
            ExitCode::from(1)
        }
    }
}

/// Warns (`FILE:LINE: warning:`) of each stretch of the coming week when
/// a schedule has nobody on call, in the schedule's time zone.
fn warn_gaps(dir: &Path, d: &signalbox::deploy::Deployment, now: chrono::DateTime<chrono::Utc>) {
    let file = dir.join("organization.toml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let src = signalbox::deploy::problem::Source {
        name: "organization.toml",
        text: &text,
    };
    for schedule in d.organization.world.roster.schedules.values() {
        let line = src.find_line(&schedule.id, None);
        for (from, to) in schedule.gaps(now, chrono::Duration::days(7)) {
            let local = |t: chrono::DateTime<chrono::Utc>| {
                t.with_timezone(&schedule.timezone)
                    .format("%a %Y-%m-%d %H:%M")
            };
            eprintln!(
                "{}:{line}: warning: schedule `{}`: nobody on call from {} to {} ({})",
                file.display(),
                schedule.id,
                local(from),
                local(to),
                schedule.timezone.name()
            );
        }
    }
}

/// `signalbox oncall`: who is on call on each schedule (of `team`) at `at`
/// (default now), with the overrides the journal holds, when that changes,
/// and the gaps of the week from then.
pub(crate) fn oncall(
    place: &super::JournalPlace,
    team: Option<&str>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    json: bool,
) -> Result<()> {
    let Some(deployment) = &place.deployment else {
        anyhow::bail!("oncall reads a deployment's schedules: pass --config DIR");
    };
    let mut roster = deployment.organization.world.roster.clone();
    if place.dir.join(signalbox::journal::FILE_NAME).exists()
        && let Some(journaled) = signalbox::journal::read::roster(&place.dir)?
    {
        roster.keep_overrides(&journaled);
    }
    if let Some(t) = team
        && !roster.schedules.values().any(|s| s.team == t)
    {
        anyhow::bail!("team `{t}` has no [[schedule]]");
    }
    let at = at.unwrap_or_else(chrono::Utc::now);
    let week = chrono::Duration::days(7);
    let rows: Vec<serde_json::Value> = roster
        .on_call(at, team)
        .into_iter()
        .map(|on| {
            let gaps: Vec<_> = roster
                .schedules
                .get(&on.schedule)
                .map(|s| s.gaps(at, week))
                .unwrap_or_default()
                .into_iter()
                .map(|(from, to)| serde_json::json!({ "from": from, "to": to }))
                .collect();
            serde_json::json!({
                "schedule": on.schedule,
                "team": on.team,
                "person": on.person,
                "by": on.by,
                "until": on.until,
                "gaps": gaps,
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "at": at, "on_call": rows }))?
        );
        return Ok(());
    }
    println!("on call at {}", at.format("%Y-%m-%d %H:%M UTC"));
    for r in &rows {
        let until = r["until"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or("(no change this week)".to_string(), |t| {
                format!("until {}", t.to_utc().format("%Y-%m-%d %H:%M UTC"))
            });
        println!(
            "  {:<16} {:<12} {:<12} {:<12} {until}",
            r["schedule"].as_str().unwrap_or(""),
            r["team"].as_str().unwrap_or(""),
            r["person"].as_str().unwrap_or("NOBODY"),
            r["by"].as_str().unwrap_or(""),
        );
        for g in r["gaps"].as_array().into_iter().flatten() {
            println!(
                "      gap: nobody from {} to {}",
                g["from"].as_str().unwrap_or("?"),
                g["to"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}
