//! Real terminals for the console's end-to-end tests: tmux sessions, what
//! they show, and waiting until they show something.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs tmux on the session's own server (`-L SESSION`): a test's
/// sessions never share a server with another test's, so one test killing
/// its last session (and with it the server) cannot take down a session
/// another test is starting at that moment.
pub fn tmux(session: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", session])
        .args(args)
        .output()
        .expect("tmux must be installed to run the console tests (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command` in a new detached session at 120x40.
pub fn start(session: &str, command: &str) {
    tmux(
        session,
        &[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ],
    );
}

pub fn screen(session: &str) -> String {
    tmux(session, &["capture-pane", "-p", "-t", session])
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

/// Whether the session still runs (its program has not exited).
pub fn alive(session: &str) -> bool {
    Command::new("tmux")
        .args(["-L", session, "has-session", "-t", session])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// tmux sessions, killed when dropped.
pub struct Sessions(pub Vec<String>);

impl Drop for Sessions {
    fn drop(&mut self) {
        for s in &self.0 {
            tmux(s, &["kill-session", "-t", s]);
        }
    }
}
