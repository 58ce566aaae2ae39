//! Webhook executors: a step whose executor is configured as a webhook is
//! POSTed to it with an idempotency key. Each send retries with exponential
//! backoff and jitter on connection errors, timeouts and 5xx; the answer
//! goes back to the engine, whose per-endpoint circuit breaker, step
//! retries, fallback route to people and compensation do the rest.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::host::{Busy, Command, Handle};
use crate::flow::Dispatch;

/// Tries per send, and the first backoff between them.
const TRIES: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(100);

/// Sends each job as it comes; `ca_file` is trusted beside the system's roots.
pub async fn run(
    mut jobs: UnboundedReceiver<Dispatch>,
    engine: Handle,
    ca_file: Option<std::path::PathBuf>,
) {
    let client = match crate::outbound::client(ca_file.as_deref(), Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook executor cannot start");
            return;
        }
    };
    while let Some(job) = jobs.recv().await {
        let client = client.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let (success, detail) = send(&client, &job).await;
            let mut result = Some(Command::StepResult {
                flow_id: job.flow_id.clone(),
                step: job.step,
                attempt: job.attempt,
                success,
                detail,
            });
            // The engine's queue may be full for a moment: keep the answer.
            while let Some(r) = result.take() {
                match engine.send(r) {
                    Ok(()) | Err(Busy::Gone) => {}
                    Err(Busy::Full) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        result = Some(Command::StepResult {
                            flow_id: job.flow_id.clone(),
                            step: job.step,
                            attempt: job.attempt,
                            success,
                            detail: String::new(),
                        });
                    }
                }
            }
        });
    }
}

async fn send(client: &reqwest::Client, job: &Dispatch) -> (bool, String) {
    use crate::outbound::{Failed, Retries, post_json};
    let body = serde_json::to_vec(&job.body).unwrap_or_default();
    let headers = [("idempotency-key", job.idempotency_key.as_str())];
    let retries = Retries {
        tries: TRIES,
        backoff: BACKOFF,
        jitter: true,
    };
    match post_json(client, &job.url, body, &headers, retries).await {
        Ok(a) => (true, format!("{} {}", job.executor, a.status)),
        Err(Failed::Answered(a)) => (false, format!("{} answered {}", job.executor, a.status)),
        Err(Failed::Unreachable(e, _)) => (false, format!("{}: {e}", job.executor)),
    }
}
