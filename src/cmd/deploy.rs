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
