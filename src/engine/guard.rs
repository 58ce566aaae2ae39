//! The boundary around deciding one signal: a panic there is caught, so
//! that one signal the engine cannot decide is quarantined instead of
//! stopping the engine (and, its signal still in the intake log, stopping
//! it again at every restart).
//!
//! A panic hook runs before the unwinding that `catch_unwind` stops, and
//! the console's hook restores the terminal. While a panic is being caught
//! here, `install_hook`'s hook logs it and stays quiet; any other panic goes
//! to the hook that was installed before.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the current panic hook: panics inside `catching` are logged,
/// others go on to it. Install it after any hook of one's own (the
/// console installs one that restores the terminal).
pub fn install_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if CATCHING.with(Cell::get) {
            tracing::error!(panic = %info, "panic while deciding a signal; it is quarantined");
            return;
        }
        previous(info);
    }));
}

/// `install_hook`, once per process.
pub fn install_hook_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(install_hook);
}

/// Runs `f`; a panic inside it comes back as its message.
pub fn catching<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| format!("panicked: {}", panic_message(payload.as_ref())))
}

/// What a panic said, from its payload (`catch_unwind`'s, or a task's
/// `JoinError::into_panic`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_comes_back_as_its_message() {
        install_hook_once();
        assert_eq!(catching(|| 7), Ok(7));
        let caught = catching(|| -> u32 { panic!("bad value {}", 3) });
        assert_eq!(caught, Err("panicked: bad value 3".to_string()));
        // Nested: the inner boundary does not end the outer one.
        let nested = catching(|| {
            let _ = catching(|| panic!("inner"));
            panic!("outer")
        });
        assert_eq!(nested, Err::<(), _>("panicked: outer".to_string()));
    }
}
