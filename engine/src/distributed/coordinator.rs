//! `sabot coordinator`: keeps the list of workers (registrations and heartbeats), takes
//! queries from clients, runs their stages' tasks on free worker slots, and recovers from lost
//! workers by recomputing the tasks and shuffle outputs that were on them.
//!
//! A query runs in waves: each wave starts every missing task of the stages whose inputs are
//! complete. A task whose worker died, or which could not fetch an input from a dead worker,
//! marks that worker lost; every output it held is forgotten, so the stages that produced them
//! run those tasks again before their readers retry. A task that fails otherwise is retried
//! up to the configured number of attempts.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sabot_planner::{Exchange, StagePlan};
use sabot_shuffle::{
    Bytes, ClusterStatus, Handler, Peers, QueryRequest, QueryStatus, QuerySummary, ResultStream,
    Security, ShuffleError, TaskFailure, TaskInput, TaskReport, TaskSpec, TaskStatus, Ticket,
    WorkerRegistration, WorkerStatus, batch_stream,
};
use tokio::sync::Notify;

use super::planning::plan_query;
use super::process::{listen, rpc_runtime};
use crate::error::{Result, SabotError};

/// What `sabot coordinator` runs with.
#[derive(Debug, Clone)]
pub struct CoordinatorOptions {
    /// The address to listen on (`host:port`).
    pub listen: String,
    /// A worker silent for this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// Attempts per task before its query fails.
    pub max_task_attempts: usize,
    pub security: Security,
}

/// Runs a coordinator until the process is stopped (Ctrl-C ends it).
pub fn run_coordinator(options: CoordinatorOptions) -> Result<()> {
    rpc_runtime("coordinator")?.block_on(serve_coordinator(options))
}

async fn serve_coordinator(options: CoordinatorOptions) -> Result<()> {
    let (listener, bound) = listen(&options.listen).await?;
    let coordinator = Arc::new(CoordinatorService {
        peers: Peers::new(options.security.clone()),
        options: options.clone(),
        workers: Mutex::new(Vec::new()),
        slot_freed: Notify::new(),
        next_query: AtomicU64::new(1),
        queries: Mutex::new(HashMap::new()),
        finished: Mutex::new(VecDeque::new()),
        running: Mutex::new(HashMap::new()),
    });
    tokio::spawn(watch_heartbeats(Arc::clone(&coordinator)));
    println!("sabot coordinator: serving on {bound}");
    let handler: Arc<dyn Handler> = coordinator;
    sabot_shuffle::serve(listener, handler, &options.security, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Declares workers lost once they miss heartbeats for the timeout.
async fn watch_heartbeats(coordinator: Arc<CoordinatorService>) {
    let timeout = coordinator.options.heartbeat_timeout;
    loop {
        tokio::time::sleep(timeout / 4).await;
        let silent: Vec<String> = coordinator
            .workers()
            .iter()
            .filter(|worker| worker.alive && worker.last_heartbeat.elapsed() > timeout)
            .map(|worker| worker.address.clone())
            .collect();
        for address in silent {
            coordinator.mark_lost(&address, "it missed its heartbeats");
        }
    }
}

struct WorkerEntry {
    address: String,
    slots: usize,
    running: usize,
    alive: bool,
    last_heartbeat: Instant,
}

struct CoordinatorService {
    options: CoordinatorOptions,
    peers: Peers,
    workers: Mutex<Vec<WorkerEntry>>,
    /// Woken when a slot frees up or a worker joins.
    slot_freed: Notify,
    next_query: AtomicU64,
    queries: Mutex<HashMap<u64, QueryStatus>>,
    finished: Mutex<VecDeque<QuerySummary>>,
    /// Tasks running now: the worker and when it started.
    running: Mutex<HashMap<TaskKey, (String, Instant)>>,
}

/// A task: (query, stage, partition).
type TaskKey = (u64, usize, usize);

/// Finished queries the status keeps.
const FINISHED_KEPT: usize = 100;

/// How one attempt at a task ended, other than with its report.
enum Attempt {
    /// The worker `address` is gone (it ran the task, or held one of its inputs).
    Lost { address: String, message: String },
    /// The task failed on a live worker.
    Failed { message: String },
}

/// Where each task's output is, per stage.
struct Progress {
    locations: Vec<Vec<Option<String>>>,
    reports: Vec<Vec<TaskReport>>,
}

impl Progress {
    fn complete(&self, stage: usize) -> bool {
        self.locations[stage].iter().all(Option::is_some)
    }

    /// Forgets every output held by `address`.
    fn forget_worker(&mut self, address: &str) {
        for location in self.locations.iter_mut().flatten() {
            if location.as_deref() == Some(address) {
                *location = None;
            }
        }
    }
}

impl CoordinatorService {
    fn workers(&self) -> MutexGuard<'_, Vec<WorkerEntry>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, registration: WorkerRegistration) {
        let mut workers = self.workers();
        let slots = registration.slots.max(1);
        match workers
            .iter_mut()
            .find(|worker| worker.address == registration.address)
        {
            Some(worker) => {
                worker.slots = slots;
                worker.alive = true;
                worker.running = 0;
                worker.last_heartbeat = Instant::now();
            }
            None => workers.push(WorkerEntry {
                address: registration.address.clone(),
                slots,
                running: 0,
                alive: true,
                last_heartbeat: Instant::now(),
            }),
        }
        drop(workers);
        eprintln!(
            "sabot coordinator: worker {} registered with {slots} slots",
            registration.address
        );
        self.slot_freed.notify_waiters();
    }

    /// Records a heartbeat; false if the worker is not known as alive (it must register).
    fn heartbeat(&self, address: &str) -> bool {
        let mut workers = self.workers();
        match workers
            .iter_mut()
            .find(|worker| worker.address == address && worker.alive)
        {
            Some(worker) => {
                worker.last_heartbeat = Instant::now();
                true
            }
            None => false,
        }
    }

    fn mark_lost(&self, address: &str, why: &str) {
        let mut workers = self.workers();
        if let Some(worker) = workers
            .iter_mut()
            .find(|worker| worker.address == address && worker.alive)
        {
            worker.alive = false;
            eprintln!("sabot coordinator: worker {address} lost: {why}");
        }
        drop(workers);
        self.peers.forget(address);
        self.slot_freed.notify_waiters();
    }

    fn is_alive(&self, address: &str) -> bool {
        self.workers()
            .iter()
            .any(|worker| worker.address == address && worker.alive)
    }

    fn live_slots(&self) -> usize {
        self.workers()
            .iter()
            .filter(|worker| worker.alive)
            .map(|worker| worker.slots)
            .sum()
    }

    /// Takes a free slot, on `preferred` if it has one, else on the least busy live worker;
    /// waits while every slot is taken. Fails when no worker is alive.
    async fn acquire_slot(&self, preferred: Option<&str>) -> Result<String> {
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut workers = self.workers();
                if !workers.iter().any(|worker| worker.alive) {
                    return Err(SabotError::Cluster {
                        message: "no live workers: every worker was lost".to_string(),
                    });
                }
                let free =
                    |worker: &&mut WorkerEntry| worker.alive && worker.running < worker.slots;
                let chosen = match workers
                    .iter_mut()
                    .filter(free)
                    .find(|worker| Some(worker.address.as_str()) == preferred)
                {
                    Some(worker) => Some(worker),
                    None => workers
                        .iter_mut()
                        .filter(free)
                        .min_by_key(|worker| worker.running * 1000 / worker.slots),
                };
                if let Some(worker) = chosen {
                    worker.running += 1;
                    return Ok(worker.address.clone());
                }
            }
            freed.await;
        }
    }

    fn release_slot(&self, address: &str) {
        if let Some(worker) = self
            .workers()
            .iter_mut()
            .find(|worker| worker.address == address)
        {
            worker.running = worker.running.saturating_sub(1);
        }
        self.slot_freed.notify_waiters();
    }

    /// Waits until `address` is declared lost.
    async fn until_lost(&self, address: &str) {
        while self.is_alive(address) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one task on a free slot.
    async fn attempt(
        &self,
        spec: TaskSpec,
        preferred: Option<String>,
    ) -> Result<std::result::Result<(String, TaskReport), Attempt>> {
        let address = self.acquire_slot(preferred.as_deref()).await?;
        let started = Instant::now();
        let key = (spec.query, spec.stage, spec.task);
        eprintln!(
            "sabot coordinator: query {} stage {} task {} started on {address}",
            key.0, key.1, key.2
        );
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (address.clone(), started));
        let call = async {
            let mut peer = self.peers.get(&address).await?;
            peer.action::<std::result::Result<TaskReport, TaskFailure>>("run_task", &spec)
                .await
        };
        let outcome = tokio::select! {
            reply = call => reply,
            () = self.until_lost(&address) => Err(ShuffleError::Unreachable {
                address: address.clone(),
                message: "declared lost while running the task".to_string(),
            }),
        };
        self.release_slot(&address);
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        let (query, stage, task) = key;
        Ok(match outcome {
            Ok(Ok(report)) => {
                eprintln!(
                    "sabot coordinator: query {query} stage {stage} task {task} finished on \
                     {address} in {} ms ({} rows)",
                    started.elapsed().as_millis(),
                    report.rows
                );
                Ok((address, report))
            }
            Ok(Err(TaskFailure::FetchFailed {
                address: holder,
                message,
            })) => Err(Attempt::Lost {
                address: holder,
                message: format!("fetching a shuffle output failed: {message}"),
            }),
            Ok(Err(TaskFailure::Failed { message })) => Err(Attempt::Failed { message }),
            Err(error) if error.is_unreachable() => Err(Attempt::Lost {
                address,
                message: error.to_string(),
            }),
            Err(error) => Err(Attempt::Failed {
                message: error.to_string(),
            }),
        })
    }

    /// Runs a query to its result.
    async fn run_query(&self, request: QueryRequest) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let partitions = self.live_slots();
        if partitions == 0 {
            return Err(SabotError::Cluster {
                message: "no live workers: start some with `sabot worker --coordinator <URL>`"
                    .to_string(),
            });
        }
        let planning = request.clone();
        let planned = tokio::task::spawn_blocking(move || plan_query(&planning, partitions, 1))
            .await
            .map_err(|error| SabotError::Execution {
                message: format!("planning panicked: {error}"),
            })??;
        if planned.explain {
            return explain_batch(&planned.schema, &planned.stages);
        }
        let query = self.next_query.fetch_add(1, Ordering::Relaxed);
        let stages = &planned.stages;
        self.queries().insert(
            query,
            QueryStatus {
                id: query,
                sql: request.sql.clone(),
                stages: stages.stages.len(),
                tasks_done: 0,
                tasks_total: stages.stages.iter().map(|stage| stage.tasks).sum(),
                retries: 0,
            },
        );
        eprintln!(
            "sabot coordinator: query {query}: {} stages over {partitions} partitions",
            stages.stages.len()
        );
        let started = Instant::now();
        let result = self.run_stages(query, &request, stages).await;
        let status = self.queries().remove(&query);
        self.release_query(query).await;
        let (batches, progress) = result?;
        let summary = QuerySummary {
            id: query,
            sql: request.sql,
            millis: started.elapsed().as_millis() as u64,
            stages: stages.stages.len(),
            shuffle_bytes_written: progress.reports[..stages.stages.len() - 1]
                .iter()
                .flatten()
                .map(|report| report.bucket_bytes.iter().sum::<u64>())
                .sum(),
            shuffle_bytes_read: bytes_read(stages, &progress),
            retries: status.map_or(0, |status| status.retries),
        };
        eprintln!(
            "sabot coordinator: query {query} done in {} ms, {} shuffle bytes written, {} read, \
             {} retries",
            summary.millis,
            summary.shuffle_bytes_written,
            summary.shuffle_bytes_read,
            summary.retries
        );
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        if finished.len() == FINISHED_KEPT {
            finished.pop_front();
        }
        finished.push_back(summary);
        Ok((Arc::clone(&planned.schema), batches))
    }

    fn queries(&self) -> MutexGuard<'_, HashMap<u64, QueryStatus>> {
        self.queries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run_stages(
        &self,
        query: u64,
        request: &QueryRequest,
        stages: &StagePlan,
    ) -> Result<(Vec<RecordBatch>, Progress)> {
        let fingerprint = stages.fingerprint();
        let mut progress = Progress {
            locations: stages
                .stages
                .iter()
                .map(|stage| vec![None; stage.tasks])
                .collect(),
            reports: stages
                .stages
                .iter()
                .map(|stage| vec![TaskReport::default(); stage.tasks])
                .collect(),
        };
        let mut failures: HashMap<(usize, usize), usize> = HashMap::new();
        let result_stage = stages.result_stage().id;
        loop {
            if progress.complete(result_stage) {
                let locations = &progress.locations[result_stage];
                match self.fetch_result(query, result_stage, locations).await {
                    Ok(batches) => return Ok((batches, progress)),
                    Err((address, message)) => {
                        self.mark_lost(&address, &message);
                        progress.forget_worker(&address);
                        continue;
                    }
                }
            }
            let runnable: Vec<usize> = stages
                .stages
                .iter()
                .filter(|stage| {
                    let reader_needs = match stages.reader_of(stage.id) {
                        Some(reader) => !progress.complete(reader),
                        None => true,
                    };
                    !progress.complete(stage.id)
                        && reader_needs
                        && stage.inputs.iter().all(|&input| progress.complete(input))
                })
                .map(|stage| stage.id)
                .collect();
            let mut attempts = Vec::new();
            for &stage_id in &runnable {
                let stage = &stages.stages[stage_id];
                for task in 0..stage.tasks {
                    if progress.locations[stage_id][task].is_some() {
                        continue;
                    }
                    let inputs = stage
                        .inputs
                        .iter()
                        .map(|&input| TaskInput {
                            stage: input,
                            locations: progress.locations[input]
                                .iter()
                                .map(|location| location.clone().unwrap_or_default())
                                .collect(),
                        })
                        .collect();
                    let spec = TaskSpec {
                        query,
                        sql: request.sql.clone(),
                        tables: request.tables.clone(),
                        partitions: stages.partitions,
                        stage: stage_id,
                        task,
                        fingerprint,
                        inputs,
                    };
                    let preferred = preferred_worker(stages, &progress, stage_id, task);
                    attempts
                        .push(async move { (stage_id, task, self.attempt(spec, preferred).await) });
                }
            }
            for (stage, task, outcome) in futures::future::join_all(attempts).await {
                match outcome? {
                    Ok((address, report)) => {
                        progress.locations[stage][task] = Some(address);
                        progress.reports[stage][task] = report;
                        if let Some(status) = self.queries().get_mut(&query) {
                            status.tasks_done += 1;
                        }
                    }
                    Err(Attempt::Lost { address, message }) => {
                        self.mark_lost(&address, &message);
                        progress.forget_worker(&address);
                        self.count_retry(query, stage, task, &message);
                    }
                    Err(Attempt::Failed { message }) => {
                        let failed = failures.entry((stage, task)).or_default();
                        *failed += 1;
                        if *failed >= self.options.max_task_attempts {
                            return Err(SabotError::Cluster {
                                message: format!(
                                    "query {query}: stage {stage} task {task} failed {failed} \
                                     times; the last error: {message}"
                                ),
                            });
                        }
                        self.count_retry(query, stage, task, &message);
                    }
                }
            }
            if self.live_slots() == 0 {
                return Err(SabotError::Cluster {
                    message: format!("query {query} cannot finish: every worker was lost"),
                });
            }
        }
    }

    fn count_retry(&self, query: u64, stage: usize, task: usize, why: &str) {
        eprintln!("sabot coordinator: query {query} stage {stage} task {task} will retry: {why}");
        if let Some(status) = self.queries().get_mut(&query) {
            status.retries += 1;
        }
    }

    /// The result stage's outputs, in task order; on failure, the worker that could not be
    /// read and why.
    async fn fetch_result(
        &self,
        query: u64,
        stage: usize,
        locations: &[Option<String>],
    ) -> std::result::Result<Vec<RecordBatch>, (String, String)> {
        let mut batches = Vec::new();
        for (task, address) in locations.iter().flatten().enumerate() {
            let ticket = Ticket::Shuffle {
                query,
                stage,
                task,
                bucket: 0,
            };
            let fetched = async {
                let mut peer = self.peers.get(address).await?;
                peer.fetch(&ticket).await
            };
            batches.extend(
                fetched
                    .await
                    .map_err(|error| (address.clone(), error.to_string()))?,
            );
        }
        Ok(batches)
    }

    /// Tells every live worker to drop the query's outputs.
    async fn release_query(&self, query: u64) {
        let addresses: Vec<String> = self
            .workers()
            .iter()
            .filter(|worker| worker.alive)
            .map(|worker| worker.address.clone())
            .collect();
        let releases = addresses.iter().map(|address| async move {
            if let Ok(mut peer) = self.peers.get(address).await {
                // A worker that cannot be told keeps the outputs until it restarts.
                let _ = peer.action::<()>("release", &query).await;
            }
        });
        futures::future::join_all(releases).await;
    }

    fn status(&self) -> ClusterStatus {
        let running: Vec<QueryStatus> = self.queries().values().cloned().collect();
        ClusterStatus {
            workers: self
                .workers()
                .iter()
                .map(|worker| WorkerStatus {
                    address: worker.address.clone(),
                    slots: worker.slots,
                    alive: worker.alive,
                    running_tasks: worker.running,
                    last_heartbeat_ms: worker.last_heartbeat.elapsed().as_millis() as u64,
                })
                .collect(),
            queries: running,
            tasks: self
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(&(query, stage, task), (worker, started))| TaskStatus {
                    query,
                    stage,
                    task,
                    worker: worker.clone(),
                    running_ms: started.elapsed().as_millis() as u64,
                })
                .collect(),
            finished: self
                .finished
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// The bucket of its input stage `input` that task `task` reads: its own partition of a hash
/// exchange, the one bucket of a broadcast, and of a gather only the first task reads it.
fn bucket_read(stages: &StagePlan, input: usize, task: usize) -> Option<usize> {
    match stages.stages[input].output {
        Exchange::Hash(_) => Some(task),
        Exchange::Gather if task != 0 => None,
        _ => Some(0),
    }
}

/// Bytes the tasks of every stage read from their input stages' outputs.
fn bytes_read(stages: &StagePlan, progress: &Progress) -> u64 {
    let mut total = 0;
    for stage in &stages.stages {
        for task in 0..stage.tasks {
            for &input in &stage.inputs {
                if let Some(bucket) = bucket_read(stages, input, task) {
                    total += progress.reports[input]
                        .iter()
                        .map(|report| report.bucket_bytes.get(bucket).copied().unwrap_or(0))
                        .sum::<u64>();
                }
            }
        }
    }
    total
}

/// The worker holding most of the bytes task `task` of stage `stage` will read; `None` when
/// its inputs are spread evenly or it reads none.
fn preferred_worker(
    stages: &StagePlan,
    progress: &Progress,
    stage: usize,
    task: usize,
) -> Option<String> {
    let mut held: HashMap<&str, u64> = HashMap::new();
    for &input in &stages.stages[stage].inputs {
        let Some(bucket) = bucket_read(stages, input, task) else {
            continue;
        };
        for (location, report) in progress.locations[input]
            .iter()
            .zip(&progress.reports[input])
        {
            if let Some(address) = location {
                *held.entry(address.as_str()).or_default() +=
                    report.bucket_bytes.get(bucket).copied().unwrap_or(0);
            }
        }
    }
    let total: u64 = held.values().sum();
    let (address, most) = held.into_iter().max_by_key(|(_, bytes)| *bytes)?;
    // Prefer a worker only where it holds over half the input.
    (most * 2 > total).then(|| address.to_string())
}

/// The result of `EXPLAIN` on a distributed session: the stages.
fn explain_batch(schema: &SchemaRef, stages: &StagePlan) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["distributed_plan"])),
        Arc::new(StringArray::from(vec![stages.display()])),
    ];
    let batch = RecordBatch::try_new(Arc::clone(schema), columns)?;
    Ok((Arc::clone(schema), vec![batch]))
}

#[sabot_shuffle::async_trait]
impl Handler for CoordinatorService {
    async fn action(&self, name: &str, body: Bytes) -> sabot_shuffle::Result<Vec<u8>> {
        let decode_error = |error: serde_json::Error| {
            ShuffleError::Invalid(format!("unreadable {name} message: {error}"))
        };
        let reply = match name {
            "register" => {
                let registration: WorkerRegistration =
                    serde_json::from_slice(&body).map_err(decode_error)?;
                self.register(registration);
                serde_json::to_vec(&())
            }
            "heartbeat" => {
                let address: String = serde_json::from_slice(&body).map_err(decode_error)?;
                serde_json::to_vec(&self.heartbeat(&address))
            }
            "status" => serde_json::to_vec(&self.status()),
            other => {
                return Err(ShuffleError::Invalid(format!(
                    "the coordinator has no action {other}"
                )));
            }
        };
        reply.map_err(|error| ShuffleError::Invalid(format!("cannot encode a reply: {error}")))
    }

    async fn stream(&self, ticket: Ticket) -> sabot_shuffle::Result<(SchemaRef, ResultStream)> {
        let Ticket::Query(request) = ticket else {
            return Err(ShuffleError::Invalid(
                "the coordinator runs queries; fetch shuffle outputs from workers".into(),
            ));
        };
        let (schema, batches) = self
            .run_query(request)
            .await
            .map_err(|error| ShuffleError::Invalid(error.to_string()))?;
        Ok((schema, batch_stream(batches)))
    }
}
