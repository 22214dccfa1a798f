//! An in-memory world for the job runner (`babybook_edge::jobs::runner`): the rows (status, lease
//! holder, lease expiry), the `jobs` queue with its deliveries, attempts and delays, the runtime's
//! `max_retries`, `jobs-dlq` with the DLQ handler's effect, the dead-job store, the sweep, the
//! media worker and the purge API, and an operator's re-drive.
//!
//! Every call the runner makes through the port is an await point that stays `Pending` until the
//! scheduler resumes it, with success or a fault; meanwhile other deliveries of the same job, the
//! DLQ handler, the sweep and the clock move on. Batches run as tasks polled by hand with a no-op
//! waker. `tests/fuzz.rs` `job_lifecycle` lets proptest choose the schedule and checks the
//! properties of docs/queues.md ("A job's life") after every step.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use babybook_edge::error::{ApiError, ErrorCode};
use babybook_edge::jobs::port::{Bid, Claim, Deletion, Emit, Finished, MediaAnswer, Port, Subject};
use babybook_edge::jobs::runner;
use babybook_edge::share::purge::PurgeTarget;
use babybook_edge::telemetry::{Level, LogContext, LogLine};
use babybook_jobs::lifecycle::{self, Lease, RowStatus, LEASE_SECONDS};
use babybook_jobs::{
    DeadJob, DeadLetter, Failure, FailureClass, FailureKind, Id, Job, JobMessage, MediaOutcome, ReapTarget, TraceId,
    MAX_ATTEMPTS,
};

/// The runtime's `max_retries` for `jobs` (wrangler.toml).
pub const RUNTIME_MAX_RETRIES: u32 = 5;
pub const SWEEP_PERIOD_MS: i64 = 5 * 60_000;
pub const SWEEP_AFTER_MS: i64 = 2 * 60_000;
pub const DLQ_RETRY_MS: i64 = 30_000;
pub const LEASE_MS: i64 = LEASE_SECONDS as i64 * 1000;

/// How a resumed await point ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Ok,
    /// A fault; the number picks which (how many accounts' transactions committed first, which
    /// media answer).
    Fault(u8),
}

/// One step of the schedule.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// The runtime hands up to `size` visible messages of `jobs` to a new batch.
    Deliver {
        size: usize,
    },
    /// A waiting await point (picked among those waiting) goes on.
    Resume {
        pick: usize,
        pass: Pass,
    },
    Wait {
        ms: i64,
    },
    /// The */5 sweep; `partial`: its publish fails after half the messages went out (the rows'
    /// transaction rolls back).
    Sweep {
        db_down: bool,
        partial: bool,
    },
    HandleDead {
        store_fails: bool,
        db_down: bool,
    },
    /// A producer publishes one of the jobs again.
    Duplicate {
        pick: usize,
    },
    /// An operator re-drives a dead job.
    Redrive {
        pick: usize,
    },
    /// A batch's isolate dies: its messages come back.
    Kill {
        pick: usize,
    },
}

/// What the media worker answers when no fault decides, per job.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    pub running_first: u32,
    pub transient_first: u32,
    pub then_definitive: bool,
}

#[derive(Debug, Clone)]
struct Row {
    status: RowStatus,
    lease: Option<Lease>,
    published: bool,
    queued_at: i64,
    /// Bumped by each claim won: a lease's identity.
    epoch: u64,
    /// The job the sweep publishes for the row (none for rows of delete jobs).
    job: Option<JobMessage>,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    attempts: u32,
    visible_at: i64,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    task: usize,
    waker: Waker,
    pass: Option<Pass>,
}

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

struct Task {
    id: usize,
    future: TaskFuture,
    messages: Vec<String>,
}

/// Everything that is not the runner.
#[derive(Debug, Default)]
pub struct World {
    pub now: i64,
    rows: BTreeMap<Id, Row>,
    jobs: Vec<Message>,
    /// Messages handed to a batch that has not acked or retried them yet.
    in_flight: BTreeMap<String, Message>,
    /// The task each message in flight was handed to.
    owner: BTreeMap<String, usize>,
    dlq: Vec<(serde_json::Value, i64)>,
    store: BTreeMap<String, DeadJob>,
    scripts: BTreeMap<Id, Script>,
    /// The consumer's dead letters, per queue message.
    dead_letters_of: BTreeMap<String, u32>,
    purges_accepted: BTreeMap<Id, u32>,
    /// Completed media calls per (row, lease epoch) of leased jobs.
    media_done: BTreeMap<(Id, u64), u32>,
    waiting: Vec<Waiting>,
    next_wait: u64,
    next_message: u64,
    current_task: usize,
    faults_on: bool,
    pub violations: Vec<String>,
    /// What the runner reached: `job lease lost` lines (a slow delivery lost its lease to another).
    pub leases_lost: u64,
    pub media_calls: u64,
    pub events: Vec<String>,
    /// The port calls that went through, in order (the host tests of tests/job_runner.rs read
    /// the order of effects).
    pub calls: Vec<&'static str>,
    /// Every line the runner emitted.
    pub lines: Vec<LogLine>,
}

fn id(n: u8) -> Id {
    Id::parse(&format!("00000000-0000-4000-8000-0000000000{n:02x}")).expect("a uuid")
}

pub fn account_x() -> Id {
    id(0xa1)
}
pub fn account_y() -> Id {
    id(0xa2)
}

/// The jobs of a world: a transcode and an export (two accounts: one batch claims both), a
/// delete, a reap and a purge.
pub struct Jobs {
    pub transcode: JobMessage,
    pub export: JobMessage,
    pub delete: JobMessage,
    pub reap: JobMessage,
    pub purge: JobMessage,
}

impl Jobs {
    pub fn all(&self) -> [&JobMessage; 5] {
        [&self.transcode, &self.export, &self.delete, &self.reap, &self.purge]
    }
}

pub fn jobs(now: i64) -> Jobs {
    let trace = TraceId::from_random_bytes([7; 16]);
    let message = |n: u8, account: Id, job: Job| JobMessage::new(id(n), account, trace.clone(), now, job);
    Jobs {
        transcode: message(
            1,
            account_x(),
            Job::Transcode {
                asset_id: id(0x11),
                original_key: "originals/a.jpg".into(),
                media_type: "image/jpeg".into(),
            },
        ),
        export: message(2, account_y(), Job::Export { export_id: id(0x21) }),
        delete: message(3, account_x(), Job::DeleteAsset { asset_id: id(0x12) }),
        reap: message(
            4,
            account_y(),
            Job::Reap {
                target: ReapTarget::Export { export_id: id(0x22) },
            },
        ),
        purge: message(
            5,
            account_x(),
            Job::Purge {
                token_hash: "ab".repeat(32),
                failed_attempts: 0,
            },
        ),
    }
}

pub struct Model {
    pub world: Rc<RefCell<World>>,
    tasks: Vec<Task>,
    next_task: usize,
    pub jobs: Jobs,
    /// A poison message among the jobs.
    poison: bool,
}

/// The in-memory port: one per batch (the task it runs in).
#[derive(Clone)]
pub struct MemoryPort {
    world: Rc<RefCell<World>>,
}

#[derive(Debug, Clone)]
pub struct MemoryDelivery {
    id: String,
    attempts: u32,
    body: String,
}

/// An await point: `Pending` until the scheduler resumes it (in the fault-free phase it passes).
struct Gate {
    world: Rc<RefCell<World>>,
    id: Option<u64>,
}

impl Future for Gate {
    type Output = Pass;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Pass> {
        let world = self.world.clone();
        let mut w = world.borrow_mut();
        match self.id {
            None => {
                if !w.faults_on {
                    return Poll::Ready(Pass::Ok);
                }
                let id = w.next_wait;
                w.next_wait += 1;
                let task = w.current_task;
                w.waiting.push(Waiting {
                    id,
                    task,
                    waker: cx.waker().clone(),
                    pass: None,
                });
                self.id = Some(id);
                Poll::Pending
            }
            Some(id) => {
                let Some(i) = w.waiting.iter().position(|g| g.id == id) else {
                    return Poll::Pending;
                };
                match w.waiting[i].pass {
                    Some(pass) => {
                        w.waiting.remove(i);
                        Poll::Ready(pass)
                    }
                    None => {
                        w.waiting[i].waker = cx.waker().clone();
                        Poll::Pending
                    }
                }
            }
        }
    }
}

fn db_down() -> ApiError {
    ApiError::new(ErrorCode::DatabaseUnavailable, "model: the database failed")
}

fn record_key(dead: &DeadJob) -> String {
    dead.key("unreadable")
}

impl World {
    fn publish(&mut self, body: String, delay_ms: i64) {
        self.next_message += 1;
        self.jobs.push(Message {
            id: format!("m{}", self.next_message),
            body,
            attempts: 0,
            visible_at: self.now + delay_ms,
        });
    }

    /// The runtime's retry of a message: back later, or to `jobs-dlq` once its retries are spent.
    fn runtime_retry(&mut self, mut m: Message, delay_ms: i64) {
        if m.attempts > RUNTIME_MAX_RETRIES {
            let body = serde_json::from_str(&m.body).unwrap_or(serde_json::Value::String(m.body.clone()));
            self.dlq.push((body, self.now));
        } else {
            m.visible_at = self.now + delay_ms;
            self.jobs.push(m);
        }
    }

    fn finish_message(&mut self, id: &str, retry_ms: Option<i64>) {
        self.events.push(format!("{} {id} {retry_ms:?}", self.now));
        match self.in_flight.remove(id) {
            Some(m) => {
                if let Some(delay) = retry_ms {
                    self.runtime_retry(m, delay);
                }
            }
            None => self.violations.push(format!("message {id} acked or retried twice")),
        }
    }

    /// A row's status and lease holder.
    #[allow(dead_code)] // tests/job_runner.rs
    pub fn row(&self, id: Id) -> Option<(RowStatus, Option<String>)> {
        self.rows
            .get(&id)
            .map(|r| (r.status, r.lease.as_ref().map(|l| l.holder.clone())))
    }

    /// Another delivery (`holder`) takes the row over, as after its lease expired.
    #[allow(dead_code)] // tests/job_runner.rs
    pub fn lease_to(&mut self, id: Id, holder: &str) {
        let expires_at_ms = self.now + LEASE_MS;
        if let Some(r) = self.rows.get_mut(&id) {
            r.status = RowStatus::Processing;
            r.lease = Some(Lease {
                holder: holder.to_owned(),
                expires_at_ms,
            });
            r.epoch += 1;
        }
    }

    /// Messages on `jobs-dlq` not yet handled, and messages of `jobs` neither acked nor retried.
    #[allow(dead_code)] // tests/job_runner.rs
    pub fn dlq_and_in_flight(&self) -> (usize, usize) {
        (self.dlq.len(), self.in_flight.len())
    }

    fn has_record(&self, job_id: Id) -> bool {
        self.store
            .values()
            .any(|d| d.job.as_ref().is_some_and(|j| j.job_id == job_id))
    }

    fn record_on_its_way(&self, job_id: Id) -> bool {
        self.dlq.iter().any(|(v, _)| {
            DeadLetter::from_value(v.clone(), 0)
                .job
                .is_some_and(|j| j.job_id == job_id)
        })
    }

    /// An operator re-drove the job (its record is gone) and the re-drive's message is on the
    /// queue: a dying delivery that marks the row `failed` after that leaves it to the re-drive,
    /// which takes a `failed` row back.
    fn redrive_on_its_way(&self, job_id: Id) -> bool {
        self.jobs
            .iter()
            .chain(self.in_flight.values())
            .filter_map(|m| JobMessage::parse(&m.body).ok())
            .any(|m| m.job_id == job_id && m.redrive_count > 0)
    }

    fn dead_class(&self, job_id: Id) -> Option<FailureClass> {
        self.store
            .values()
            .find(|d| d.job.as_ref().is_some_and(|j| j.job_id == job_id))
            .map(DeadJob::class)
    }

    /// Property 1: a `failed` row always has its dead record, stored or on its way.
    fn check_failed_rows_have_records(&mut self) {
        let bad: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, r)| r.status == RowStatus::Failed)
            .filter_map(|(row, r)| {
                let job = r.job.as_ref()?.job_id;
                (!self.has_record(job) && !self.record_on_its_way(job) && !self.redrive_on_its_way(job)).then(|| {
                    format!(
                        "row {row} is failed without a dead record: {:?} {:?} {:?}",
                        self.store.keys(),
                        self.dlq,
                        self.jobs.iter().map(|m| &m.body).collect::<Vec<_>>()
                    )
                })
            })
            .collect();
        self.violations.extend(bad);
    }

    /// Property 4: once the faults stopped (at `since`), no lease stays expired past one sweep.
    fn check_takeover(&mut self, since: i64) {
        let now = self.now;
        let bad: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, r)| r.status == RowStatus::Processing)
            .filter_map(|(row, r)| {
                let expired = r.lease.as_ref()?.expires_at_ms;
                (now - expired.max(since) > SWEEP_PERIOD_MS + 1_000)
                    .then(|| format!("row {row}: its lease expired at {expired} and nobody took it over by {now}"))
            })
            .collect();
        self.violations.extend(bad);
    }

    fn sweep(&mut self, db_down: bool, partial: bool) {
        if db_down {
            return;
        }
        let before = self.now - SWEEP_AFTER_MS;
        let taken: Vec<Id> = self
            .rows
            .iter()
            .filter(|(_, r)| r.job.is_some())
            .filter(|(_, r)| {
                lifecycle::sweep_takes(r.status, r.published, r.queued_at, r.lease.as_ref(), before, self.now)
            })
            .map(|(id, _)| *id)
            .collect();
        let sent = if partial { taken.len() / 2 } else { taken.len() };
        for row in &taken[..sent] {
            let body = self.rows[row].job.as_ref().map(JobMessage::to_json).unwrap_or_default();
            self.publish(body, 0);
        }
        if partial {
            return; // the publish failed: the rows' transaction rolls back
        }
        for row in taken {
            let now = self.now;
            if let Some(r) = self.rows.get_mut(&row) {
                r.status = RowStatus::Queued;
                r.lease = None;
                r.published = true;
                r.queued_at = now;
            }
        }
    }

    /// The DLQ handler (`src/edge/dead_letters.rs`) on the next visible dead letter.
    fn handle_dead(&mut self, store_fails: bool, db_down: bool) {
        let Some(i) = (0..self.dlq.len()).find(|&i| self.dlq[i].1 <= self.now) else {
            return;
        };
        let (value, _) = self.dlq.remove(i);
        if store_fails {
            self.dlq.push((value, self.now + DLQ_RETRY_MS));
            return;
        }
        let dead = DeadLetter::from_value(value.clone(), self.now);
        self.store.insert(record_key(&dead), dead.clone());
        let Some(job) = dead.job.as_ref() else { return };
        let Some(subject) = Subject::of(&job.job) else { return };
        if db_down {
            self.dlq.push((value, self.now + DLQ_RETRY_MS));
            return;
        }
        let now = self.now;
        if let Some(r) = self.rows.get_mut(&subject.raw()) {
            let leased_live =
                r.status == RowStatus::Processing && r.lease.as_ref().is_some_and(|l| l.expires_at_ms >= now);
            if !matches!(r.status, RowStatus::Ready | RowStatus::Deleted) && !leased_live {
                r.status = RowStatus::Failed;
                r.lease = None;
            }
        }
    }

    /// `POST /admin/jobs/redrive` of one stored record: the row back to `queued`, the job
    /// published again with one more re-drive, the record deleted.
    fn redrive(&mut self, pick: usize) {
        // Unreadable bodies are skipped and stay.
        let keys: Vec<String> = self
            .store
            .iter()
            .filter(|(_, d)| d.job.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        let key = keys[pick % keys.len()].clone();
        let Some(dead) = self.store.remove(&key) else { return };
        let Some(mut job) = dead.job else { return };
        if let Some(subject) = Subject::of(&job.job) {
            let now = self.now;
            if let Some(r) = self
                .rows
                .get_mut(&subject.raw())
                .filter(|r| r.status == RowStatus::Failed)
            {
                r.status = RowStatus::Queued;
                r.queued_at = now;
                r.published = false;
            }
        }
        job.redrive_count += 1;
        job.enqueued_at = babybook_jobs::format_rfc3339_millis(self.now);
        self.publish(job.to_json(), 0);
        if let Some(subject) = Subject::of(&job.job) {
            if let Some(r) = self.rows.get_mut(&subject.raw()) {
                r.published = true;
                r.job = Some(job);
            }
        }
    }

    fn media_answer(&mut self, message: &JobMessage, pass: Pass) -> MediaAnswer {
        let valid = match message.job {
            Job::Export { .. } => serde_json::json!({"object_key": "exports/e.zip"}),
            _ => {
                serde_json::json!({"width": 64, "height": 48, "derivatives": [{"key": format!("derived/{}/a/480.webp", message.account_id), "width": 480}]})
            }
        };
        let done = |body| MediaAnswer {
            outcome: MediaOutcome::Done,
            body,
            running: None,
        };
        let running = |after: u32| MediaAnswer {
            outcome: MediaOutcome::Done,
            body: serde_json::json!({"retry_after_seconds": after}),
            running: Some(after),
        };
        if let Pass::Fault(n) = pass {
            return match n % 6 {
                0 => MediaAnswer::failed(Failure::new(FailureKind::Unavailable, Some(503), "model")),
                1 => MediaAnswer::failed(Failure::new(FailureKind::Timeout, None, "model")),
                2 => MediaAnswer::failed(Failure::new(FailureKind::CorruptMedia, Some(422), "model")),
                3 => done(serde_json::json!({"derivatives": "not an array"})),
                4 => running(30),
                _ => MediaAnswer::failed(Failure::new(FailureKind::Connection, None, "model")),
            };
        }
        let script = self.scripts.entry(message.job_id).or_insert(Script {
            running_first: 0,
            transient_first: 0,
            then_definitive: false,
        });
        if script.running_first > 0 {
            script.running_first -= 1;
            return running(20);
        }
        if script.transient_first > 0 {
            script.transient_first -= 1;
            return MediaAnswer::failed(Failure::new(FailureKind::Unavailable, Some(503), "model"));
        }
        if script.then_definitive {
            return MediaAnswer::failed(Failure::new(FailureKind::CorruptMedia, Some(422), "model"));
        }
        done(valid)
    }
}

impl MemoryPort {
    fn gate(&self) -> Gate {
        Gate {
            world: self.world.clone(),
            id: None,
        }
    }

    fn accounts(accounts: impl Iterator<Item = Id>) -> Vec<Id> {
        let mut seen = Vec::new();
        for a in accounts {
            if !seen.contains(&a) {
                seen.push(a);
            }
        }
        seen
    }

    /// How many of `n` accounts' transactions commit before a fault ends the round trip.
    fn committed(pass: Pass, n: usize) -> usize {
        match pass {
            Pass::Ok => n,
            Pass::Fault(k) => usize::from(k) % (n + 1),
        }
    }
}

impl Port for MemoryPort {
    type Delivery = MemoryDelivery;

    fn message_id(&self, delivery: &MemoryDelivery) -> String {
        delivery.id.clone()
    }

    fn attempts(&self, delivery: &MemoryDelivery) -> u32 {
        delivery.attempts
    }

    fn body(&self, delivery: &MemoryDelivery) -> String {
        delivery.body.clone()
    }

    fn ack(&self, delivery: &MemoryDelivery) {
        self.world.borrow_mut().calls.push("ack");
        self.world.borrow_mut().finish_message(&delivery.id, None);
    }

    fn retry(&self, delivery: &MemoryDelivery, delay_seconds: u32) {
        self.world.borrow_mut().calls.push("retry");
        self.world
            .borrow_mut()
            .finish_message(&delivery.id, Some(i64::from(delay_seconds) * 1000));
    }

    fn now_ms(&self) -> i64 {
        self.world.borrow().now
    }

    fn new_trace_id(&self) -> TraceId {
        TraceId::from_random_bytes([9; 16])
    }

    fn concurrency(&self) -> usize {
        6
    }

    fn line(&self, trace: &TraceId, level: Level, text: &str) -> LogLine {
        let context = LogContext {
            env: "model",
            trace_id: trace.to_string(),
            deployed: Default::default(),
        };
        LogLine::new(level, text, &context, self.now_ms())
    }

    fn emit(&self, line: LogLine, _: Emit) {
        let mut w = self.world.borrow_mut();
        if line.get("message").and_then(|m| m.as_str()) == Some("job lease lost") {
            w.leases_lost += 1;
        }
        w.lines.push(line);
    }

    async fn claim(&self, bids: &[Bid<'_>]) -> Result<Vec<(usize, Claim)>, ApiError> {
        let pass = self.gate().await;
        let mut w = self.world.borrow_mut();
        w.calls.push("claim");
        let accounts = Self::accounts(bids.iter().map(|b| b.account));
        let committed = Self::committed(pass, accounts.len());
        let now = w.now;
        let mut answers = Vec::new();
        for account in &accounts[..committed] {
            for bid in bids.iter().filter(|b| b.account == *account) {
                let claim = match w.rows.get_mut(&bid.subject.raw()) {
                    None => Claim::Lost(lifecycle::when_claim_lost(None, bid.redriven)),
                    Some(r) if lifecycle::may_claim(r.status, r.lease.as_ref(), bid.holder, now, bid.redriven) => {
                        r.status = RowStatus::Processing;
                        r.lease = Some(Lease {
                            holder: bid.holder.to_owned(),
                            expires_at_ms: now + LEASE_MS,
                        });
                        r.epoch += 1;
                        Claim::Won
                    }
                    Some(r) => Claim::Lost(lifecycle::when_claim_lost(Some(r.status), bid.redriven)),
                };
                answers.push((bid.number, claim));
            }
        }
        match pass {
            Pass::Ok => Ok(answers),
            Pass::Fault(_) => Err(db_down()),
        }
    }

    async fn record(&self, finished: &[Finished<'_>]) -> Result<Vec<String>, ApiError> {
        let pass = self.gate().await;
        let mut w = self.world.borrow_mut();
        w.calls.push("record");
        let accounts = Self::accounts(finished.iter().map(|f| f.account));
        let committed = Self::committed(pass, accounts.len());
        let mut written = Vec::new();
        for account in &accounts[..committed] {
            for f in finished.iter().filter(|f| f.account == *account) {
                if let Some(r) = w.rows.get_mut(&f.subject.raw()) {
                    if r.status == RowStatus::Processing && r.lease.as_ref().is_some_and(|l| l.holder == f.holder) {
                        r.status = RowStatus::Ready;
                        r.lease = None;
                        written.push(f.subject.id());
                    }
                }
            }
        }
        match pass {
            Pass::Ok => Ok(written),
            Pass::Fault(_) => Err(db_down()),
        }
    }

    async fn release(&self, _: Id, subject: Subject, holder: &str) -> Result<(), ApiError> {
        if let Pass::Fault(_) = self.gate().await {
            return Err(db_down());
        }
        let mut w = self.world.borrow_mut();
        let now = w.now;
        if let Some(r) = w.rows.get_mut(&subject.raw()) {
            if r.status == RowStatus::Processing && r.lease.as_ref().is_some_and(|l| l.holder == holder) {
                r.status = RowStatus::Queued;
                r.lease = None;
                r.queued_at = now;
            }
        }
        Ok(())
    }

    async fn mark_failed(&self, _: Id, subject: Subject, _: &Failure, holder: &str) -> Result<bool, ApiError> {
        if let Pass::Fault(_) = self.gate().await {
            return Err(db_down());
        }
        let mut w = self.world.borrow_mut();
        w.calls.push("mark_failed");
        let Some(r) = w.rows.get_mut(&subject.raw()) else {
            return Ok(false);
        };
        let fenced = r.status == RowStatus::Processing && r.lease.as_ref().is_some_and(|l| l.holder == holder);
        if matches!(r.status, RowStatus::Ready | RowStatus::Deleted) || !fenced {
            return Ok(false);
        }
        r.status = RowStatus::Failed;
        r.lease = None;
        Ok(true)
    }

    async fn status_of(&self, _: Id, _: Deletion, id: Id) -> Result<Option<String>, ApiError> {
        if let Pass::Fault(_) = self.gate().await {
            return Err(db_down());
        }
        let w = self.world.borrow();
        Ok(w.rows.get(&id).map(|r| {
            if r.status == RowStatus::Deleted {
                "deleted".to_owned()
            } else {
                "ready".to_owned()
            }
        }))
    }

    async fn mark_deleted(&self, _: Id, _: Deletion, id: Id) -> Result<(), ApiError> {
        if let Pass::Fault(_) = self.gate().await {
            return Err(db_down());
        }
        if let Some(r) = self.world.borrow_mut().rows.get_mut(&id) {
            r.status = RowStatus::Deleted;
        }
        Ok(())
    }

    async fn publish_after(&self, message: &JobMessage, delay_seconds: u32) -> Result<(), String> {
        if let Pass::Fault(_) = self.gate().await {
            return Err("model: the queue refused the publish".into());
        }
        self.world
            .borrow_mut()
            .publish(message.to_json(), i64::from(delay_seconds) * 1000);
        Ok(())
    }

    async fn dead_letter(&self, delivery: &MemoryDelivery, dead: &DeadJob) -> Result<(), String> {
        if let Pass::Fault(_) = self.gate().await {
            return Err("model: jobs-dlq refused the publish".into());
        }
        let mut w = self.world.borrow_mut();
        w.calls.push("dead_letter");
        let now = w.now;
        w.dlq
            .push((serde_json::from_str(&dead.to_json()).unwrap_or_default(), now));
        *w.dead_letters_of.entry(delivery.id.clone()).or_default() += 1;
        Ok(())
    }

    async fn run_job(&self, message: &JobMessage) -> MediaAnswer {
        // Which lease the call starts under (leased jobs only).
        let lease = Subject::of(&message.job).map(|s| {
            let w = self.world.borrow();
            let r = w.rows.get(&s.raw());
            (
                s.raw(),
                r.filter(|r| r.status == RowStatus::Processing).map(|r| r.epoch),
            )
        });
        let pass = self.gate().await;
        let mut w = self.world.borrow_mut();
        w.calls.push("run_job");
        w.media_calls += 1;
        if let Some((row, epoch)) = lease {
            match epoch {
                None => w
                    .violations
                    .push(format!("a media call for row {row} started without a lease")),
                Some(epoch) => *w.media_done.entry((row, epoch)).or_default() += 1,
            }
        }
        w.media_answer(message, pass)
    }

    async fn purge(&self, _: PurgeTarget) -> Result<(), String> {
        if let Pass::Fault(_) = self.gate().await {
            return Err("model: the purge API refused".into());
        }
        // One purge job in the world.
        let mut w = self.world.borrow_mut();
        *w.purges_accepted.entry(id(5)).or_default() += 1;
        Ok(())
    }
}

impl Model {
    /// A world at time 0 with every job committed; `published[i]`: job i's publish went through
    /// (a leased job whose publish was lost waits for the sweep).
    pub fn new(scripts: [Script; 5], published: [bool; 5], poison: bool) -> Model {
        let now = 1_000_000;
        let jobs = jobs(now);
        let mut world = World {
            now,
            faults_on: true,
            ..World::default()
        };
        for (n, job) in jobs.all().into_iter().enumerate() {
            world.scripts.insert(job.job_id, scripts[n]);
            let (row, leased) = match (&job.job, Subject::of(&job.job)) {
                (_, Some(subject)) => (Some(subject.raw()), true),
                (Job::DeleteAsset { asset_id }, None) => (Some(*asset_id), false),
                (
                    Job::Reap {
                        target: ReapTarget::Export { export_id },
                    },
                    None,
                ) => (Some(*export_id), false),
                _ => (None, false),
            };
            if let Some(row) = row {
                world.rows.insert(
                    row,
                    Row {
                        status: if leased { RowStatus::Queued } else { RowStatus::Ready },
                        lease: None,
                        published: published[n] || !leased,
                        queued_at: now,
                        epoch: 0,
                        job: leased.then(|| (*job).clone()),
                    },
                );
            }
            if published[n] || !leased {
                world.publish(job.to_json(), 0);
            }
        }
        if poison {
            world.publish("not a job".into(), 0);
        }
        Model {
            world: Rc::new(RefCell::new(world)),
            tasks: Vec::new(),
            next_task: 0,
            jobs,
            poison,
        }
    }

    /// Faults off: every port call passes at once, so a delivered batch runs to its end.
    #[allow(dead_code)] // tests/job_runner.rs
    pub fn without_faults(self) -> Model {
        self.world.borrow_mut().faults_on = false;
        self
    }

    fn spawn(&mut self, size: usize) {
        let task = self.next_task;
        let deliveries: Vec<MemoryDelivery> = {
            let mut w = self.world.borrow_mut();
            let now = w.now;
            let mut visible: Vec<usize> = (0..w.jobs.len()).filter(|&i| w.jobs[i].visible_at <= now).collect();
            visible.sort_by_key(|&i| (w.jobs[i].visible_at, i));
            visible.truncate(size.max(1));
            visible.sort_unstable_by(|a, b| b.cmp(a));
            let mut taken: Vec<Message> = visible.into_iter().map(|i| w.jobs.remove(i)).collect();
            taken.reverse();
            taken
                .into_iter()
                .map(|mut m| {
                    m.attempts += 1;
                    let d = MemoryDelivery {
                        id: m.id.clone(),
                        attempts: m.attempts,
                        body: m.body.clone(),
                    };
                    w.events.push(format!("{now} deliver {} attempt {}", m.id, m.attempts));
                    w.owner.insert(m.id.clone(), task);
                    w.in_flight.insert(m.id.clone(), m);
                    d
                })
                .collect()
        };
        if deliveries.is_empty() {
            return;
        }
        let port = MemoryPort {
            world: self.world.clone(),
        };
        let messages = deliveries.iter().map(|d| d.id.clone()).collect();
        let future: TaskFuture = Box::pin(async move {
            let _ = runner::run_batch(&port, &deliveries).await;
        });
        self.tasks.push(Task {
            id: self.next_task,
            future,
            messages,
        });
        self.next_task += 1;
    }

    /// Polls every task until each waits or is done.
    fn poll_all(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut i = 0;
        while i < self.tasks.len() {
            self.world.borrow_mut().current_task = self.tasks[i].id;
            if self.tasks[i].future.as_mut().poll(&mut cx).is_ready() {
                let task = self.tasks.remove(i);
                let mut w = self.world.borrow_mut();
                for m in task
                    .messages
                    .iter()
                    .filter(|m| w.owner.get(*m) == Some(&task.id))
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    if let Some(m) = w.in_flight.remove(&m) {
                        let e = format!("message {} was neither acked nor retried: {:?}", m.id, w.events);
                        w.violations.push(e);
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    fn kill(&mut self, pick: usize) {
        if self.tasks.is_empty() {
            return;
        }
        let task = self.tasks.remove(pick % self.tasks.len());
        let mut w = self.world.borrow_mut();
        w.waiting.retain(|g| g.task != task.id);
        for m in task
            .messages
            .iter()
            .filter(|m| w.owner.get(*m) == Some(&task.id))
            .cloned()
            .collect::<Vec<_>>()
        {
            if let Some(m) = w.in_flight.remove(&m) {
                w.runtime_retry(m, 0);
            }
        }
    }

    fn resume(&mut self, pick: usize, pass: Pass) {
        let mut w = self.world.borrow_mut();
        let open: Vec<usize> = (0..w.waiting.len()).filter(|&i| w.waiting[i].pass.is_none()).collect();
        if open.is_empty() {
            return;
        }
        let i = open[pick % open.len()];
        w.waiting[i].pass = Some(pass);
        w.waiting[i].waker.wake_by_ref();
    }

    pub fn step(&mut self, action: Action) {
        match action {
            Action::Deliver { size } => self.spawn(size),
            Action::Resume { pick, pass } => self.resume(pick, pass),
            Action::Wait { ms } => self.world.borrow_mut().now += ms,
            Action::Sweep { db_down, partial } => self.world.borrow_mut().sweep(db_down, partial),
            Action::HandleDead { store_fails, db_down } => self.world.borrow_mut().handle_dead(store_fails, db_down),
            Action::Duplicate { pick } => {
                let body = self.jobs.all()[pick % 5].to_json();
                self.world.borrow_mut().publish(body, 0);
            }
            Action::Redrive { pick } => self.world.borrow_mut().redrive(pick),
            Action::Kill { pick } => self.kill(pick),
        }
        self.poll_all();
        self.world.borrow_mut().check_failed_rows_have_records();
    }

    fn quiet(&self) -> bool {
        let w = self.world.borrow();
        // A row still queued or leased waits for a delivery or the sweep.
        let rows_idle = w
            .rows
            .values()
            .all(|r| r.job.is_none() || !matches!(r.status, RowStatus::Queued | RowStatus::Processing));
        self.tasks.is_empty() && w.jobs.is_empty() && w.dlq.is_empty() && w.in_flight.is_empty() && rows_idle
    }

    /// The faults stop: the deliveries that wait stay stalled `stall_ms` more (past their leases,
    /// if long enough) while the runtime delivers, the DLQ handler handles and the sweep runs every
    /// five minutes; then they go on. Once all is quiet, an operator re-drives every dead job that
    /// did not fail for good, and all runs quiet again. `Err` when that took longer than `bound_ms`.
    pub fn run_fault_free(&mut self, stall_ms: i64, bound_ms: i64) -> Result<i64, String> {
        let start = {
            let mut w = self.world.borrow_mut();
            w.faults_on = false;
            w.now
        };
        let (mut next_sweep, mut released, mut redriven) = (start, false, false);
        loop {
            let now = self.world.borrow().now;
            if now - start > bound_ms {
                return Err(format!(
                    "not settled {bound_ms} ms after the faults stopped: {:?}",
                    self.world.borrow()
                ));
            }
            if !released && now >= start + stall_ms {
                released = true;
                let mut w = self.world.borrow_mut();
                for g in w.waiting.iter_mut() {
                    g.pass = Some(Pass::Ok);
                    g.waker.wake_by_ref();
                }
            }
            self.poll_all();
            {
                let mut w = self.world.borrow_mut();
                w.check_failed_rows_have_records();
                w.check_takeover(start);
            }
            let (visible_job, visible_dead, next_event) = {
                let w = self.world.borrow();
                let next = w
                    .jobs
                    .iter()
                    .map(|m| m.visible_at)
                    .chain(w.dlq.iter().map(|d| d.1))
                    .chain([next_sweep])
                    .chain((!released).then_some(start + stall_ms))
                    .min()
                    .unwrap_or(next_sweep);
                (
                    w.jobs.iter().any(|m| m.visible_at <= now),
                    w.dlq.iter().any(|d| d.1 <= now),
                    next,
                )
            };
            if visible_job {
                self.spawn(4);
            } else if visible_dead {
                self.world.borrow_mut().handle_dead(false, false);
            } else if now >= next_sweep {
                self.world.borrow_mut().sweep(false, false);
                next_sweep += SWEEP_PERIOD_MS;
            } else if released && self.quiet() {
                if redriven {
                    return Ok(now - start);
                }
                redriven = true;
                let mut w = self.world.borrow_mut();
                let again: Vec<usize> = w
                    .store
                    .values()
                    .filter(|d| d.job.is_some())
                    .enumerate()
                    .filter(|(_, d)| d.class() != FailureClass::Definitive)
                    .map(|(i, _)| i)
                    .collect();
                // Re-driving removes a record, so the indexes shift: re-drive from the last.
                for i in again.into_iter().rev() {
                    w.redrive(i);
                }
            } else {
                self.world.borrow_mut().now = next_event.max(now + 1);
            }
        }
    }

    /// The properties that hold once all is quiet (docs/queues.md, "A job's life").
    pub fn check_settled(&self, scripts: &[Script; 5]) -> Result<(), String> {
        let w = self.world.borrow();
        if let Some(v) = w.violations.first() {
            return Err(v.clone());
        }
        // Exactly one dead letter per message that died (its retry never dies again).
        if let Some((m, n)) = w.dead_letters_of.iter().find(|(_, n)| **n > 1) {
            return Err(format!("message {m} was dead-lettered {n} times"));
        }
        // At most one media call completes per lease.
        if let Some(((row, epoch), n)) = w.media_done.iter().find(|(_, n)| **n > 1) {
            return Err(format!("{n} media calls completed under lease {epoch} of row {row}"));
        }
        if self.poison && !w.store.values().any(|d| d.job.is_none()) {
            return Err("the poison message left no dead record".into());
        }
        for (n, job) in self.jobs.all().into_iter().enumerate() {
            let definitive = w.dead_class(job.job_id) == Some(FailureClass::Definitive);
            let row = match (&job.job, Subject::of(&job.job)) {
                (_, Some(s)) => Some(s.raw()),
                (Job::DeleteAsset { asset_id }, None) => Some(*asset_id),
                (
                    Job::Reap {
                        target: ReapTarget::Export { export_id },
                    },
                    None,
                ) => Some(*export_id),
                _ => None,
            };
            let status = row.and_then(|r| w.rows.get(&r)).map(|r| r.status);
            // Settles: ready (or deleted, or purged), or dead with its record.
            let done = match (&job.job, status) {
                (Job::Purge { .. }, _) => w.purges_accepted.values().sum::<u32>() > 0,
                (_, Some(RowStatus::Ready)) => Subject::of(&job.job).is_some(),
                (_, Some(RowStatus::Deleted)) => Subject::of(&job.job).is_none(),
                _ => false,
            };
            let dead_with_record =
                w.has_record(job.job_id) && (status == Some(RowStatus::Failed) || Subject::of(&job.job).is_none());
            if !done && !dead_with_record {
                return Err(format!(
                    "job {n} ({:?}) did not settle: row {status:?}: {w:?}",
                    job.job_type()
                ));
            }
            // A job whose faults stopped and whose failure was not definitive ends done.
            let fails_for_good = scripts[n].then_definitive || definitive;
            if !fails_for_good && !done {
                return Err(format!(
                    "job {n} ({:?}) ended {status:?} though nothing failed it for good",
                    job.job_type()
                ));
            }
        }
        Ok(())
    }
}

/// The bound after the faults stop: a stall, a lease, the sweep periods, the longest backoff of a
/// job's retries and of the runtime's redeliveries, the running job's re-asks and the DLQ's
/// retries — twice (before and after the re-drive).
pub fn settle_bound_ms(stall_ms: i64) -> i64 {
    let backoff: i64 = (1..=MAX_ATTEMPTS + RUNTIME_MAX_RETRIES)
        .map(|a| i64::from(babybook_jobs::retry_delay_seconds(a)) * 1000 + 60_000)
        .sum();
    stall_ms + 2 * (LEASE_MS + 3 * SWEEP_PERIOD_MS + backoff + 10 * DLQ_RETRY_MS + 4 * 30_000)
}
