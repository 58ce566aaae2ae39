//! File intake: `--source jsonl:PATH` reads CloudEvents, one per line, from
//! a file (or `-` for stdin). A bad line is reported with its line number
//! and skipped; the rest go on. Each batch is acknowledged by the journal
//! before the next is read.

use std::io::{BufRead, BufReader};
use std::thread::JoinHandle;

use chrono::Utc;
use tokio::sync::oneshot;

use crate::engine::host::{Busy, Command, Handle};
use crate::signal::Signal;

const BATCH: usize = 256;

/// What a finished file source did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileReport {
    pub lines: usize,
    pub accepted: usize,
    pub duplicates: usize,
    pub bad: usize,
}

/// What stops a file source (a bad line does not: it is reported and
/// skipped).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("source {0:?}: expected jsonl:PATH (or jsonl:- for stdin)")]
    Spec(String),
    #[error("{path}: {error}")]
    Open {
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("the engine stopped")]
    EngineStopped,
    #[error("the engine refused the signals: {0}")]
    Refused(#[source] crate::engine::EngineError),
}

/// Parses `jsonl:PATH`.
pub fn parse_spec(spec: &str) -> Result<String, FileError> {
    match spec.split_once(':') {
        Some(("jsonl", path)) if !path.is_empty() => Ok(path.to_string()),
        _ => Err(FileError::Spec(spec.to_string())),
    }
}

/// Reads the source on its own thread; bad lines go to `report_bad`.
pub fn spawn(
    path: String,
    engine: Handle,
    report_bad: impl Fn(String) + Send + 'static,
) -> std::io::Result<JoinHandle<Result<FileReport, FileError>>> {
    std::thread::Builder::new()
        .name(format!("source:{path}"))
        .spawn(move || {
            let reader: Box<dyn BufRead> = if path == "-" {
                Box::new(BufReader::new(std::io::stdin()))
            } else {
                let file = std::fs::File::open(&path).map_err(|error| FileError::Open {
                    path: path.clone(),
                    error,
                })?;
                Box::new(BufReader::new(file))
            };
            read(&path, reader, &engine, &report_bad)
        })
}

fn read(
    path: &str,
    reader: Box<dyn BufRead>,
    engine: &Handle,
    report_bad: &dyn Fn(String),
) -> Result<FileReport, FileError> {
    let mut report = FileReport::default();
    let mut batch: Vec<Signal> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                report.bad += 1;
                report_bad(format!("{path}:{n}: unreadable line: {e}"));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        match Signal::from_json(&line, Utc::now())
            .and_then(|s| crate::signal::check_outside_source(&s).map(|()| s))
        {
            Ok(s) => batch.push(s),
            Err(e) => {
                report.bad += 1;
                report_bad(format!("{path}:{n}: {e}"));
            }
        }
        if batch.len() >= BATCH {
            send(engine, std::mem::take(&mut batch), &mut report)?;
        }
    }
    if !batch.is_empty() {
        send(engine, batch, &mut report)?;
    }
    Ok(report)
}

fn send(engine: &Handle, signals: Vec<Signal>, report: &mut FileReport) -> Result<(), FileError> {
    let mut pending = Some(signals);
    loop {
        let (tx, rx) = oneshot::channel();
        let signals = pending.take().unwrap_or_default();
        let copy = signals.clone();
        match engine.send(Command::Ingest { signals, reply: tx }) {
            Ok(()) => {
                let done = rx
                    .blocking_recv()
                    .map_err(|_| FileError::EngineStopped)?
                    .map_err(FileError::Refused)?;
                report.accepted += done.accepted;
                report.duplicates += done.duplicates;
                return Ok(());
            }
            Err(Busy::Full) => {
                // Back off and try again: a file source can wait.
                pending = Some(copy);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(Busy::Gone) => return Err(FileError::EngineStopped),
        }
    }
}
