//! Noise controls: what keeps a signal from opening work of its own even
//! though it was taken in. Each is a rule over a signal's labels, and a
//! signal it holds is recorded (journaled, explained) with the rule that
//! held it: silences (`silence`), inhibition (`inhibit`), and alerts held
//! off as transient or flapping (`holdoff`). The labels a
//! rule sees and its matchers are the signal's (`signal::labels`). Pure data with the time passed in; the
//! engine consults them before deciding, the intake serves them.

pub mod holdoff;
pub mod inhibit;
pub mod silence;

pub use crate::signal::labels::{Matcher, labels};
pub use inhibit::{InhibitBook, Inhibited};
pub use silence::{Silence, SilenceBook, SilenceRefused, SilenceState};
