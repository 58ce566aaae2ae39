//! What the engine's thread is asked to do (`Command`), each with a typed
//! reply: a read answered at once, or an action whose reply waits for the
//! turn's commit (`Reply`). The host (`host.rs`) carries them out.

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::EngineError;
use super::host::{IngestReport, Status};
use super::quarantine::{Release, Released};
use super::reload::{Reload, Versions};
use crate::flow::{Flow, Task, TaskAction, TaskFilter};
use crate::review::{Action, Actor, ReviewAction, ReviewItem};
use crate::signal::Signal;

/// A reply that promises durability: sent once the turn's batch is
/// committed (or its commit failed: `EngineError::NotDurable`).
pub type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// What the engine's thread is asked to do.
pub enum Command {
    /// Signals from inside (a file, a probe): decided and journaled.
    Ingest {
        signals: Vec<Signal>,
        reply: Reply<IngestReport>,
    },
    /// A page of the open review items, in id order.
    Reviews {
        page: crate::page::Page,
        reply: oneshot::Sender<crate::page::Paged<ReviewItem>>,
    },
    /// One review item, open or decided, while the queue holds it.
    Review {
        id: String,
        reply: oneshot::Sender<Option<ReviewItem>>,
    },
    Act {
        review_id: String,
        actor: Actor,
        action: Action,
        note: String,
        reply: Reply<ReviewAction>,
    },
    /// A lead retries or drops a quarantined signal.
    Quarantine {
        how: Release,
        signal_id: String,
        source: Option<String>,
        actor: Actor,
        note: String,
        reply: Reply<Released>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    /// A lead's call on the guarded ramp.
    Ramp {
        call: crate::decide::ramp::LeadCall,
        actor: Actor,
        note: String,
        reply: Reply<crate::decide::ramp::RampState>,
    },
    /// A webhook executor's answer for a dispatched step.
    StepResult {
        flow_id: String,
        step: usize,
        attempt: u32,
        success: bool,
        detail: String,
    },
    /// The intake log has committed signals the engine has not read.
    Appended,
    /// People's tasks.
    Tasks {
        filter: TaskFilter,
        page: crate::page::Page,
        reply: oneshot::Sender<crate::page::Paged<Task>>,
    },
    /// One page of the flows in memory.
    Flows {
        filter: crate::flow::FlowFilter,
        page: crate::page::Page,
        reply: oneshot::Sender<crate::page::Paged<crate::flow::Flow>>,
    },
    /// A person completes, fails or hands on a task.
    TaskAct {
        task_id: String,
        action: TaskAction,
        actor: Actor,
        note: String,
        reply: Reply<Task>,
    },
    /// One flow in memory, with its steps.
    Flow {
        id: String,
        reply: oneshot::Sender<Option<Box<Flow>>>,
    },
    /// A validated deployment to take (SIGHUP, `POST /v1/config/reload`).
    Reload {
        reload: Box<Reload>,
        actor: Actor,
        reply: Reply<Versions>,
    },
    /// The versions decisions are made under.
    Versions {
        reply: oneshot::Sender<Versions>,
    },
    /// A person acknowledges or resolves a page.
    PageAct {
        id: String,
        action: super::PageAction,
        actor: Actor,
        reply: Reply<crate::paging::Page>,
    },
    /// The advisor's breaker as it stands (for Health).
    AdvisorState(super::overview::AdvisorRow),
    /// Examples from a cluster's model stream, with their positions
    /// (`Engine::learn_shared`).
    LearnShared(Vec<(u64, crate::journal::Feedback)>),
    /// The advisor's proposal for an open review item.
    Advise {
        review_id: String,
        advice: crate::review::Advice,
        reply: Reply<ReviewItem>,
    },
    /// What became of a page's notification (`intake::pager`).
    PageDelivered {
        page_id: String,
        attempt: u32,
        result: Result<String, String>,
    },
    /// Pages in memory, newest first (open ones only, or all).
    Pages {
        open_only: bool,
        reply: oneshot::Sender<Vec<crate::paging::Page>>,
    },
    /// One page in memory, with every attempt.
    Page {
        id: String,
        reply: oneshot::Sender<Option<crate::paging::Page>>,
    },
    /// Incidents in memory (the open ones only, or all), newest first.
    Incidents {
        open_only: bool,
        reply: oneshot::Sender<Vec<crate::flow::incident::Incident>>,
    },
    /// One incident in memory, with its alerts.
    Incident {
        id: String,
        reply: oneshot::Sender<Option<crate::flow::incident::Incident>>,
    },
    /// Silences in memory.
    Silences {
        reply: oneshot::Sender<Vec<crate::noise::Silence>>,
    },
    /// Makes or changes a silence (identity from the credential).
    PutSilence {
        asked: crate::noise::silence::NewSilence,
        actor: Actor,
        reply: Reply<crate::noise::Silence>,
    },
    /// How many open review items a silence with these matchers would
    /// match, and the engine's now (a simulated run's clock).
    SilencePreview {
        matchers: Vec<crate::noise::Matcher>,
        reply: oneshot::Sender<(usize, DateTime<Utc>)>,
    },
    /// Ends a silence now.
    ExpireSilence {
        id: String,
        actor: Actor,
        reply: Reply<crate::noise::Silence>,
    },
    /// A person resolves an incident (identity from their credential).
    ResolveIncident {
        id: String,
        actor: Actor,
        reply: Reply<crate::flow::incident::Incident>,
    },
    /// Who is on call at a time (of a team).
    OnCall {
        team: Option<String>,
        at: DateTime<Utc>,
        reply: oneshot::Sender<Vec<crate::paging::OnCall>>,
    },
    /// A lead puts someone on call for a while.
    Override {
        schedule: String,
        person: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        actor: Actor,
        reply: Reply<crate::paging::Override>,
    },
    /// What a console starts from (`overview` only: the figures alone).
    State {
        overview_only: bool,
        page: crate::page::Page,
        reply: oneshot::Sender<Box<super::overview::State>>,
    },
}
