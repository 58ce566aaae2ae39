//! Real terminals for the console's end-to-end tests: tmux sessions, what
//! they show, and waiting until they show something.

use std::process::Command;
use std::time::{Duration, Instant};

pub fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux must be installed to run the console tests (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command` in a new detached session at 120x40.
pub fn start(session: &str, command: &str) {
    tmux(&[
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "120",
        "-y",
        "40",
        command,
    ]);
}

pub fn screen(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

/// Polls the session's screen until `what` holds; fails after 30 s with
/// the screen.
pub fn wait_for(session: &str, what: impl Fn(&str) -> bool, label: &str) -> String {
    let began = Instant::now();
    loop {
        let s = screen(session);
        if what(&s) {
            return s;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "timed out waiting for {label} in {session}; screen:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// tmux sessions, killed when dropped.
pub struct Sessions(pub Vec<String>);

impl Drop for Sessions {
    fn drop(&mut self) {
        for s in &self.0 {
            tmux(&["kill-session", "-t", s]);
        }
    }
}
