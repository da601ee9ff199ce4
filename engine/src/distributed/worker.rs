//! `sabot worker`: serves a Flight endpoint, registers with the coordinator and sends it
//! heartbeats, runs the tasks it is given (fetching their inputs from other workers, running
//! the task's plan, partitioning its output for the next stage) and serves those outputs until
//! their query ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sabot_planner::Exchange;
use sabot_shuffle::{
    Bytes, Handler, HashPartitioner, OutputStore, Peers, QueryRequest, ResultStream, Security,
    ShuffleError, TaskFailure, TaskInput, TaskReport, TaskSpec, Ticket, WorkerRegistration,
    batch_stream, compact_views,
};
use tokio::sync::OnceCell;

use super::planning::{PlannedQuery, plan_query};
use super::process::{listen, rpc_runtime};
use crate::error::{Result, SabotError};

/// How long a starting worker keeps trying to reach the coordinator.
const REGISTRATION_PATIENCE: Duration = Duration::from_secs(30);

/// What `sabot worker` runs with.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The coordinator's address.
    pub coordinator: String,
    /// The address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// The address other processes reach this worker at [default: the bound listen address].
    pub advertise: Option<String>,
    /// Tasks run at once.
    pub slots: usize,
    /// Threads each task's plan runs on.
    pub threads: usize,
    /// Where shuffle outputs over the memory budget are written.
    pub spill_dir: PathBuf,
    /// Bytes of shuffle output kept in memory.
    pub shuffle_memory_bytes: usize,
    pub heartbeat_interval: Duration,
    pub security: Security,
}

/// Runs a worker until the process is stopped (Ctrl-C ends it).
pub fn run_worker(options: WorkerOptions) -> Result<()> {
    rpc_runtime("worker")?.block_on(serve_worker(options))
}

async fn serve_worker(options: WorkerOptions) -> Result<()> {
    let (listener, bound) = listen(&options.listen).await?;
    let address = options
        .advertise
        .clone()
        .unwrap_or_else(|| bound.to_string());
    let worker = Arc::new(WorkerService {
        address: address.clone(),
        threads: options.threads,
        peers: Peers::new(options.security.clone()),
        store: Arc::new(OutputStore::new(
            options
                .spill_dir
                .join(format!("sabot-shuffle-{}", bound.port())),
            options.shuffle_memory_bytes,
        )),
        queries: Mutex::new(HashMap::new()),
        broadcasts: Mutex::new(HashMap::new()),
    });
    let security = options.security.clone();
    let handler: Arc<dyn Handler> = Arc::clone(&worker) as Arc<dyn Handler>;
    let server = tokio::spawn(async move {
        sabot_shuffle::serve(listener, handler, &security, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    });

    let coordinator = Peers::new(options.security.clone());
    let registration = WorkerRegistration {
        address: address.clone(),
        slots: options.slots,
    };
    register(&coordinator, &options.coordinator, &registration).await?;
    println!(
        "sabot worker: serving on {address} with {} slots, registered with {}",
        options.slots, options.coordinator
    );
    let heartbeats = tokio::spawn(send_heartbeats(
        coordinator,
        options.coordinator.clone(),
        registration,
        options.heartbeat_interval,
    ));
    let served = server.await.map_err(|error| SabotError::Execution {
        message: format!("the worker's endpoint failed: {error}"),
    })?;
    heartbeats.abort();
    Ok(served?)
}

/// A task's output split for the stage that reads it: by the hash of the exchange's keys into
/// `partitions` buckets, else into one.
fn partition_output(
    batches: Vec<RecordBatch>,
    output: Exchange,
    partitions: usize,
) -> Result<Vec<Vec<RecordBatch>>> {
    match output {
        Exchange::Hash(keys) => {
            let partitioner = HashPartitioner::new(keys, partitions);
            let mut buckets = vec![Vec::new(); partitions];
            for batch in &batches {
                for (bucket, part) in partitioner.partition(batch)?.into_iter().enumerate() {
                    buckets[bucket].extend(part);
                }
            }
            Ok(buckets)
        }
        _ => Ok(vec![
            batches
                .into_iter()
                .map(compact_views)
                .collect::<sabot_shuffle::Result<Vec<_>>>()?,
        ]),
    }
}

/// Registers with the coordinator, retrying while it is not up yet.
async fn register(
    peers: &Peers,
    coordinator: &str,
    registration: &WorkerRegistration,
) -> Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let attempt = async {
            let mut peer = peers.get(coordinator).await?;
            peer.action::<()>("register", registration).await
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(error @ ShuffleError::Unauthenticated { .. }) => return Err(error.into()),
            Err(error) if started.elapsed() > REGISTRATION_PATIENCE => {
                return Err(SabotError::Cluster {
                    message: format!("cannot register with the coordinator: {error}"),
                });
            }
            Err(_) => {
                peers.forget(coordinator);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Tells the coordinator this worker is alive; registers again if it forgot this worker (it
/// restarted, or declared this worker lost).
async fn send_heartbeats(
    peers: Peers,
    coordinator: String,
    registration: WorkerRegistration,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let beat = async {
            let mut peer = peers.get(&coordinator).await?;
            let known: bool = peer.action("heartbeat", &registration.address).await?;
            if !known {
                peer.action::<()>("register", &registration).await?;
            }
            Ok::<(), ShuffleError>(())
        };
        if let Err(error) = beat.await {
            eprintln!("sabot worker: heartbeat to {coordinator} failed: {error}");
            peers.forget(&coordinator);
        }
    }
}

struct WorkerService {
    address: String,
    threads: usize,
    peers: Peers,
    store: Arc<OutputStore>,
    /// The queries this worker has tasks of, each planned once.
    queries: Mutex<HashMap<u64, Arc<OnceCell<Arc<PlannedQuery>>>>>,
    /// Broadcast inputs by (query, stage), fetched once for all this worker's tasks.
    broadcasts: Mutex<HashMap<(u64, usize), Arc<BroadcastInput>>>,
}

type BroadcastInput = OnceCell<Arc<Vec<RecordBatch>>>;

impl WorkerService {
    async fn run_task(&self, spec: TaskSpec) -> std::result::Result<TaskReport, TaskFailure> {
        let failed = |message: String| TaskFailure::Failed { message };
        let planned = self
            .planned(&spec)
            .await
            .map_err(|error| failed(error.to_string()))?;
        if planned.stages.fingerprint() != spec.fingerprint {
            return Err(failed(format!(
                "worker {} planned query {} differently from the coordinator (do all processes \
                 run the same build and see the same files?)",
                self.address, spec.query
            )));
        }
        let stage = planned
            .stages
            .stages
            .get(spec.stage)
            .ok_or_else(|| failed(format!("the plan has no stage {}", spec.stage)))?;

        let mut inputs: HashMap<usize, Vec<RecordBatch>> = HashMap::new();
        for input in &spec.inputs {
            let bucket = match planned.stages.stages[input.stage].output {
                Exchange::Hash(_) => Some(spec.task),
                Exchange::Gather => (spec.task == 0).then_some(0),
                Exchange::Broadcast | Exchange::Result => Some(0),
            };
            let batches = match bucket {
                None => Vec::new(),
                // A broadcast comes to this worker once, whichever of its tasks asks first.
                Some(bucket)
                    if matches!(
                        planned.stages.stages[input.stage].output,
                        Exchange::Broadcast
                    ) =>
                {
                    let cell = Arc::clone(
                        self.broadcasts
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry((spec.query, input.stage))
                            .or_default(),
                    );
                    let fetched = cell
                        .get_or_try_init(|| async {
                            self.fetch_all(spec.query, input, bucket)
                                .await
                                .map(Arc::new)
                        })
                        .await?;
                    fetched.as_ref().clone()
                }
                Some(bucket) => self.fetch_all(spec.query, input, bucket).await?,
            };
            inputs.insert(input.stage, batches);
        }

        let (query, stage_id, task) = (spec.query, spec.stage, spec.task);
        let partitions = planned.stages.partitions;
        let output = stage.output.clone();
        let schema: SchemaRef = Arc::clone(&stage.root.schema);
        let running = Arc::clone(&planned);
        let store = Arc::clone(&self.store);
        // Running, partitioning and storing are CPU work: off the RPC threads, so that
        // heartbeats and fetches keep flowing.
        let ran = tokio::task::spawn_blocking(move || {
            let plan = running.stages.task_plan(stage_id, task, &mut |id| {
                inputs.remove(&id).unwrap_or_default()
            });
            let batches = running.session.run_physical(&plan)?;
            let rows = batches.iter().map(|batch| batch.num_rows() as u64).sum();
            let buckets = partition_output(batches, output, partitions)?;
            let bucket_bytes = store.insert((query, stage_id, task), &schema, buckets)?;
            Ok::<_, SabotError>((rows, bucket_bytes))
        })
        .await
        .map_err(|error| failed(format!("the task panicked: {error}")))?;
        let (rows, bucket_bytes) = ran.map_err(|error| failed(error.to_string()))?;
        Ok(TaskReport { rows, bucket_bytes })
    }

    /// Partition `bucket` of every map task of an input stage, fetched in parallel.
    async fn fetch_all(
        &self,
        query: u64,
        input: &TaskInput,
        bucket: usize,
    ) -> std::result::Result<Vec<RecordBatch>, TaskFailure> {
        let fetches = input
            .locations
            .iter()
            .enumerate()
            .map(|(map_task, address)| self.fetch(query, input.stage, map_task, bucket, address));
        let mut batches = Vec::new();
        for fetched in futures::future::join_all(fetches).await {
            batches.extend(fetched?);
        }
        Ok(batches)
    }

    /// The query of `spec`, planned on first use.
    async fn planned(&self, spec: &TaskSpec) -> Result<Arc<PlannedQuery>> {
        let cell = Arc::clone(
            self.queries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(spec.query)
                .or_default(),
        );
        let request = QueryRequest {
            sql: spec.sql.clone(),
            tables: spec.tables.clone(),
        };
        let (partitions, threads) = (spec.partitions, self.threads);
        let planned = cell
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || plan_query(&request, partitions, threads))
                    .await
                    .map_err(|error| SabotError::Execution {
                        message: format!("planning panicked: {error}"),
                    })?
                    .map(Arc::new)
            })
            .await?;
        Ok(Arc::clone(planned))
    }

    /// One partition of one map task's output, from this worker's store or from the worker
    /// that holds it.
    async fn fetch(
        &self,
        query: u64,
        stage: usize,
        task: usize,
        bucket: usize,
        address: &str,
    ) -> std::result::Result<Vec<RecordBatch>, TaskFailure> {
        let lost = |error: ShuffleError| {
            if error.is_lost() {
                TaskFailure::FetchFailed {
                    address: address.to_string(),
                    message: error.to_string(),
                }
            } else {
                TaskFailure::Failed {
                    message: format!("fetching from {address}: {error}"),
                }
            }
        };
        if address == self.address {
            return self
                .store
                .get((query, stage, task), bucket)
                .map(|(_, batches)| batches)
                .map_err(lost);
        }
        let ticket = Ticket::Shuffle {
            query,
            stage,
            task,
            bucket,
        };
        let fetched = async {
            let mut peer = self.peers.get(address).await?;
            peer.fetch(&ticket).await
        };
        fetched.await.map_err(|error| {
            self.peers.forget(address);
            lost(error)
        })
    }

    fn release(&self, query: u64) {
        self.store.remove_query(query);
        self.broadcasts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(broadcast_query, _), _| *broadcast_query != query);
        self.queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&query);
    }
}

#[sabot_shuffle::async_trait]
impl Handler for WorkerService {
    async fn action(&self, name: &str, body: Bytes) -> sabot_shuffle::Result<Vec<u8>> {
        let decode_error = |error: serde_json::Error| {
            ShuffleError::Invalid(format!("unreadable {name} message: {error}"))
        };
        let reply = match name {
            "run_task" => {
                let spec: TaskSpec = serde_json::from_slice(&body).map_err(decode_error)?;
                serde_json::to_vec(&self.run_task(spec).await)
            }
            "release" => {
                let query: u64 = serde_json::from_slice(&body).map_err(decode_error)?;
                self.release(query);
                serde_json::to_vec(&())
            }
            other => {
                return Err(ShuffleError::Invalid(format!(
                    "a worker has no action {other}"
                )));
            }
        };
        reply.map_err(|error| ShuffleError::Invalid(format!("cannot encode a reply: {error}")))
    }

    async fn stream(&self, ticket: Ticket) -> sabot_shuffle::Result<(SchemaRef, ResultStream)> {
        let Ticket::Shuffle {
            query,
            stage,
            task,
            bucket,
        } = ticket
        else {
            return Err(ShuffleError::Invalid(
                "a worker serves shuffle outputs; send queries to the coordinator".into(),
            ));
        };
        let (schema, batches) = self.store.get((query, stage, task), bucket)?;
        Ok((schema, batch_stream(batches)))
    }
}
