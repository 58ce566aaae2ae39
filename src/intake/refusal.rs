//! Refusals: every error the intake answers is a `Refusal`, a JSON body
//! naming the field at fault where there is one. The engine's and the
//! intake log's errors become status codes here, and only here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::log;
use crate::engine::EngineError;
use crate::engine::host::Busy;

/// Marks a response as a refusal, for the middleware that counts them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refused;

/// A refusal: status, message, and the field at fault if there is one.
#[derive(Debug)]
pub struct Refusal {
    pub(super) status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: bool,
    /// Answered in PagerDuty's error shape, with this in `errors`.
    pagerduty: Option<String>,
    /// What is wrong with a deployment a reload was refused for.
    problems: Option<Vec<String>>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            field: None,
            retry_after: false,
            pagerduty: None,
            problems: None,
        }
    }

    pub fn field(mut self, field: Option<String>) -> Refusal {
        self.field = field;
        self
    }

    pub fn pagerduty(mut self, error: String) -> Refusal {
        self.pagerduty = Some(error);
        self
    }

    /// Tells the client when to try again (503s: the engine is behind or away).
    /// Adds `problems` (each `FILE:LINE: problem`) to the body.
    pub fn problems(mut self, problems: Vec<String>) -> Refusal {
        self.problems = Some(problems);
        self
    }

    pub fn retry_later(mut self) -> Refusal {
        self.retry_after = true;
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = match &self.pagerduty {
            Some(error) => json!({
                "status": "invalid event", "message": self.message, "errors": [error],
                "error": error,
            }),
            None => json!({ "error": self.message, "status": self.status.as_u16() }),
        };
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        if let Some(p) = self.problems {
            body["problems"] = json!(p);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(Refused);
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub(super) fn busy(b: Busy) -> Refusal {
    match b {
        Busy::Full => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine's queue is full; retry shortly",
        )
        .retry_later(),
        Busy::Gone => {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine has stopped").retry_later()
        }
    }
}

/// The engine's answer to a command; its refusal as a `Refusal`.
pub(super) async fn engine_answer<T>(
    rx: oneshot::Receiver<Result<T, EngineError>>,
) -> Result<T, Refusal> {
    match rx.await {
        Ok(answer) => answer.map_err(Refusal::from),
        Err(_) => {
            Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the engine stopped").retry_later())
        }
    }
}

/// What the engine refuses, as HTTP says it: the one place where its errors
/// become status codes.
impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Refusal {
        use crate::engine::OverrideRefused;
        use crate::engine::quarantine::QuarantineError;
        use crate::engine::ramp::RampRefused;
        use crate::flow::TaskError;
        use crate::paging::pages::PageRefused;
        use crate::review::ReviewError;
        let status = match &e {
            EngineError::Ramp(RampRefused::NoRamp) => StatusCode::NOT_FOUND,
            EngineError::Ramp(RampRefused::NotLead(_)) => StatusCode::FORBIDDEN,
            EngineError::Ramp(RampRefused::Busy(..) | RampRefused::Over(_)) => StatusCode::CONFLICT,
            EngineError::Ramp(_) => StatusCode::BAD_REQUEST,
            EngineError::Review(ReviewError::NotFound(_))
            | EngineError::Quarantine(QuarantineError::NotHeld(_))
            | EngineError::Task(TaskError::NotFound(_)) => StatusCode::NOT_FOUND,
            EngineError::Task(TaskError::NotOpen(..)) => StatusCode::CONFLICT,
            EngineError::Task(_) => StatusCode::BAD_REQUEST,
            EngineError::Page(PageRefused::Unknown(_)) => StatusCode::NOT_FOUND,
            EngineError::Page(PageRefused::Done { .. }) => StatusCode::CONFLICT,
            EngineError::Page(_) => StatusCode::BAD_REQUEST,
            EngineError::Override(OverrideRefused::NotLead(_)) => StatusCode::FORBIDDEN,
            EngineError::Override(_) => StatusCode::UNPROCESSABLE_ENTITY,
            EngineError::Incident(crate::engine::IncidentRefused::Unknown(_)) => {
                StatusCode::NOT_FOUND
            }
            EngineError::Incident(_) => StatusCode::CONFLICT,
            EngineError::Silence(s) => {
                use crate::noise::SilenceRefused as S;
                match s {
                    S::Invalid(_) | S::TooLong { .. } => StatusCode::BAD_REQUEST,
                    S::Unknown(_) => StatusCode::NOT_FOUND,
                    S::Expired(_) => StatusCode::CONFLICT,
                    S::NotOwner { .. } | S::Viewer => StatusCode::FORBIDDEN,
                }
            }
            EngineError::Review(ReviewError::Viewer { .. } | ReviewError::RoleTooLow { .. })
            | EngineError::Quarantine(QuarantineError::NotALead(_)) => StatusCode::FORBIDDEN,
            EngineError::Review(ReviewError::AlreadyDecided { .. })
            | EngineError::Review(ReviewError::ClaimedByOther { .. })
            | EngineError::Quarantine(QuarantineError::Ambiguous { .. }) => StatusCode::CONFLICT,
            EngineError::Review(_) => StatusCode::BAD_REQUEST,
            EngineError::NotDurable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let refusal = Refusal::new(status, e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refusal.retry_later()
        } else {
            refusal
        }
    }
}

/// What the intake log refuses, as HTTP says it.
impl From<log::Refused> for Refusal {
    fn from(r: log::Refused) -> Refusal {
        match r {
            log::Refused::Full { backlog } => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{backlog} signals wait to be decided; retry shortly"),
            )
            .retry_later(),
            log::Refused::Gone => {
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the intake log has stopped")
                    .retry_later()
            }
            log::Refused::Halted(why) => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the engine stopped deciding ({why}); signals are not taken until it restarts"
                ),
            )
            .retry_later(),
            log::Refused::Stuck(silent) => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the engine has not come round to decide for {} s; signals are not taken until it does",
                    silent.as_secs()
                ),
            )
            .retry_later(),
            log::Refused::Unwritable(e) => Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("a signal could not be written: {e}"),
            ),
        }
    }
}
