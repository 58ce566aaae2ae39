//! `signalbox bench --load URL`: a load of distinct single-alert signals
//! sent to a running server, and how long each waited: for its 202 (seen
//! here) and from its 202 to its durable decision (the server's
//! `signalbox_decision_latency_seconds`, read from `/metrics` before and
//! after). Open loop at `--rate` (each request leaves at its scheduled
//! time, whether or not earlier ones were answered, and its wait counts
//! from then), or closed loop with `--rate 0` (`--connections` senders as
//! fast as answers come: a burst).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::BenchError;

/// The figures of one load.
#[derive(Debug, Clone)]
pub struct Load {
    pub sent: u64,
    pub accepted: u64,
    pub refused: u64,
    pub seconds: f64,
    /// Time to the 202, from each request's scheduled departure.
    pub ack_p50: Duration,
    pub ack_p99: Duration,
    /// From 202 to a durable decision (upper bounds of histogram buckets).
    pub decision_p50: f64,
    pub decision_p99: f64,
    pub decisions: u64,
    /// From the last answer to an empty backlog.
    pub drained: Duration,
}

/// What to send, and how.
pub struct Plan<'a> {
    pub base: &'a str,
    pub token: Option<&'a str>,
    /// Requests per second (open loop), or 0 for as fast as answered.
    pub rate: u64,
    pub seconds: f64,
    pub connections: usize,
    /// Ids are `<prefix>-<n>`: distinct across runs against one server.
    pub prefix: String,
    /// Every other signal resolves the alert that fired this many alerts
    /// before (as Alertmanager sends them), instead of every signal
    /// firing an alert of its own that stays open.
    pub resolve_after: Option<u64>,
    /// Every Nth signal a critical alert on a service of its own (it pages), the
    /// others tickets (they do not).
    pub pages_every: Option<u64>,
    /// Where the paging signals' departures are written.
    pub sent_log: Option<std::path::PathBuf>,
}

/// Whether signal `n` pages, in the plan's mix.
fn pages(n: u64, every: Option<u64>) -> bool {
    every.is_some_and(|k| n.is_multiple_of(k.max(1)))
}

/// The `n`th signal of a load: an alert firing, or (with `resolve_after`)
/// every other one the resolution of an earlier alert, or (with
/// `pages_every`) a ticket unless it is one of those that page.
fn body(prefix: &str, n: u64, resolve_after: Option<u64>, pages_every: Option<u64>) -> String {
    if pages_every.is_some() {
        return match pages(n, pages_every) {
            true => format!(
                r#"{{"specversion":"1.0","id":"{prefix}-{n}","source":"bench","type":"alert.firing","subject":"service/api-{n}","severity":"critical","data":{{"alertname":"ApiDown","service":"api-{n}","fingerprint":"{prefix}-f{n}"}}}}"#
            ),
            false => format!(
                r#"{{"specversion":"1.0","id":"{prefix}-{n}","source":"bench","type":"ticket.opened","subject":"customer/acme","data":{{"ticket":"{prefix}-T{n}"}}}}"#
            ),
        };
    }
    let (kind, alert) = match resolve_after {
        Some(lag) if n % 2 == 1 => ("alert.resolved", (n / 2).saturating_sub(lag)),
        Some(_) => ("alert.firing", n / 2),
        None => ("alert.firing", n),
    };
    format!(
        r#"{{"specversion":"1.0","id":"{prefix}-{n}","source":"bench","type":"{kind}","subject":"service/carrier","severity":"critical","data":{{"alertname":"HighErrorRate","service":"carrier","fingerprint":"{prefix}-f{alert}","summary":"5xx above 5 percent"}}}}"#
    )
}

/// Cumulative histogram buckets of one metric: (upper bound, count).
fn buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The bound of the bucket holding the `q` quantile of what was observed
/// between two scrapes.
fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> (f64, u64) {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0, |(_, n)| *n);
            (*le, n.saturating_sub(was))
        })
        .collect();
    let total = delta.last().map_or(0, |(_, n)| *n);
    let target = ((total as f64) * q).ceil().max(1.0) as u64;
    let bound = delta
        .iter()
        .find(|(_, n)| *n >= target)
        .map_or(f64::NAN, |(le, _)| *le);
    (bound, total)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn scrape(client: &reqwest::Client, plan: &Plan<'_>) -> Result<String, BenchError> {
    let mut r = client.get(format!("{}/metrics", plan.base));
    if let Some(t) = plan.token {
        r = r.bearer_auth(t);
    }
    let r = r
        .send()
        .await
        .map_err(|e| BenchError::Setup(format!("scraping {}: {e}", plan.base)))?;
    r.text()
        .await
        .map_err(|e| BenchError::Setup(format!("scraping {}: {e}", plan.base)))
}

fn backlog(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix("signalbox_intake_backlog ")?
            .trim()
            .parse()
            .ok()
    })
}

const LATENCY: &str = "signalbox_decision_latency_seconds";

/// Sends the plan's load and measures it.
pub fn run(plan: &Plan<'_>) -> Result<Load, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    runtime.block_on(send(plan))
}

/// Closed loop: `connections` senders, each as fast as it is answered.
async fn closed_loop<F, Fut>(
    connections: usize,
    deadline: Instant,
    sent: &Arc<AtomicU64>,
    prefix: &Arc<str>,
    one: F,
) where
    F: Fn(u64, Instant, Arc<str>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (next, sent, prefix) = (Arc::clone(&next), Arc::clone(sent), Arc::clone(prefix));
        let one = one.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                sent.fetch_add(1, Ordering::Relaxed);
                one(n, Instant::now(), Arc::clone(&prefix)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Waits until everything acknowledged is decided (or a minute has
/// passed): how long that took.
async fn drain(client: &reqwest::Client, plan: &Plan<'_>) -> Result<Duration, BenchError> {
    let answered = Instant::now();
    let mut metrics = scrape(client, plan).await?;
    while backlog(&metrics).is_some_and(|b| b > 0.0) && answered.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        metrics = scrape(client, plan).await?;
    }
    let drained = answered.elapsed();
    // The last decisions' commits are observed just after the backlog
    // empties: give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(drained)
}

/// When each paging signal left (`--sent-log`), one JSON line each.
fn write_sent_log(plan: &Plan<'_>, departures: &[(u64, f64)]) -> Result<(), BenchError> {
    let Some(path) = &plan.sent_log else {
        return Ok(());
    };
    let lines: String = departures
        .iter()
        .map(|(n, ms)| format!("{{\"id\":\"{}-{n}\",\"sent_ms\":{ms:.3}}}\n", plan.prefix))
        .collect();
    std::fs::write(path, lines).map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))
}

// Over 80 lines: one sender's loop, its pacing and its accounting together.

async fn send(plan: &Plan<'_>) -> Result<Load, BenchError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.connections.max(1))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let before = buckets(&scrape(&client, plan).await?, LATENCY);
    let waits = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    // When each paging signal left, by the wall clock (the receiver of its
    // notification is on the same machine).
    let departures = Arc::new(std::sync::Mutex::new(Vec::<(u64, f64)>::new()));
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or_default();
    let began_at = Instant::now();
    let url = format!("{}/v1/signals", plan.base);
    let token = plan.token.map(String::from);
    let one = {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        let (waits, accepted, refused) = (
            Arc::clone(&waits),
            Arc::clone(&accepted),
            Arc::clone(&refused),
        );
        let (resolve_after, pages_every) = (plan.resolve_after, plan.pages_every);
        let departures = Arc::clone(&departures);
        move |n: u64, due: Instant, prefix: Arc<str>| {
            if pages(n, pages_every)
                && let Ok(mut d) = departures.lock()
            {
                d.push((n, wall + due.duration_since(began_at).as_secs_f64() * 1e3));
            }
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let (waits, accepted, refused) = (
                Arc::clone(&waits),
                Arc::clone(&accepted),
                Arc::clone(&refused),
            );
            async move {
                let mut r = client
                    .post(&url)
                    .header("content-type", "application/cloudevents+json")
                    .body(body(&prefix, n, resolve_after, pages_every));
                if let Some(t) = &token {
                    r = r.bearer_auth(t);
                }
                match r.send().await {
                    Ok(resp) if resp.status().as_u16() == 202 => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut w) = waits.lock() {
                            w.push(due.elapsed());
                        }
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    };
    let prefix: Arc<str> = plan.prefix.clone().into();
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(plan.seconds);
    if plan.rate > 0 {
        // Open loop: each request leaves on schedule; at most `connections`
        // × 64 wait at once (past that, a request leaves late and its wait
        // counts from when it was due).
        let gap = Duration::from_secs_f64(1.0 / plan.rate as f64);
        let slots = Arc::new(tokio::sync::Semaphore::new(plan.connections.max(1) * 64));
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0u64;
        loop {
            let due = began + gap.mul_f64(n as f64);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let slot = Arc::clone(&slots)
                .acquire_owned()
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            let request = one(n, due, Arc::clone(&prefix));
            tasks.spawn(async move {
                request.await;
                drop(slot);
            });
            sent.fetch_add(1, Ordering::Relaxed);
            n += 1;
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    } else {
        closed_loop(plan.connections, deadline, &sent, &prefix, one).await;
    }
    let seconds = began.elapsed().as_secs_f64();
    let drained = drain(&client, plan).await?;
    let after = buckets(&scrape(&client, plan).await?, LATENCY);
    let (decision_p50, decisions) = quantile(&before, &after, 0.50);
    let (decision_p99, _) = quantile(&before, &after, 0.99);
    let departures = departures.lock().map(|d| d.clone()).unwrap_or_default();
    write_sent_log(plan, &departures)?;
    let mut waits = waits.lock().map(|w| w.clone()).unwrap_or_default();
    waits.sort_unstable();
    Ok(Load {
        sent: sent.load(Ordering::Relaxed),
        accepted: accepted.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        seconds,
        ack_p50: percentile(&waits, 0.50),
        ack_p99: percentile(&waits, 0.99),
        decision_p50,
        decision_p99,
        decisions,
        drained,
    })
}

/// The load's two lines.
pub fn report(plan: &Plan<'_>, load: &Load) -> String {
    let how = if plan.rate > 0 {
        format!("open loop at {}/s", plan.rate)
    } else {
        format!("closed loop, {} connections", plan.connections)
    };
    format!(
        "load: {how} for {:.1} s: sent {}, 202 {} ({:.0}/s), refused {}; 202 in p50 {:.1} ms, p99 {:.1} ms\n\
         load: 202 to decision: p50 <= {:.1} ms, p99 <= {:.1} ms over {} decisions; backlog empty {:.0} ms after the last answer\n",
        load.seconds,
        load.sent,
        load.accepted,
        load.accepted as f64 / load.seconds.max(1e-9),
        load.refused,
        load.ack_p50.as_secs_f64() * 1e3,
        load.ack_p99.as_secs_f64() * 1e3,
        load.decision_p50 * 1e3,
        load.decision_p99 * 1e3,
        load.decisions,
        load.drained.as_secs_f64() * 1e3,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_bucket_deltas() {
        let text =
            "x_bucket{le=\"0.001\"} 10\nx_bucket{le=\"0.01\"} 15\nx_bucket{le=\"+Inf\"} 16\n";
        let before = vec![(0.001, 0), (0.01, 0), (f64::INFINITY, 0)];
        let after = buckets(text, "x");
        assert_eq!(after.len(), 3);
        assert_eq!(quantile(&before, &after, 0.5), (0.001, 16));
        assert_eq!(quantile(&before, &after, 0.9), (0.01, 16));
        assert_eq!(quantile(&before, &after, 0.99).0, f64::INFINITY);
        // Only what came between the two scrapes counts.
        let earlier = vec![(0.001, 10), (0.01, 10), (f64::INFINITY, 10)];
        assert_eq!(quantile(&earlier, &after, 0.5), (0.01, 6));
    }
}
