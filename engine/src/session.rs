//! The `Sabot` session: configuration, table registration, SQL entry point, statistics and
//! shutdown. A session owns the worker threads that run its queries; its API is blocking.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use sabot_exec::stream::{NexmarkConfig, NexmarkSource, NexmarkTable};
use sabot_shuffle::{Security, TableSource};

use crate::stream_table::{StreamTable, StreamTables};

use sabot_exec::{CancelHandle, Executor, MemoryBudget, PhysicalNode};
use sabot_planner::MemoryTable;
use sabot_scheduler::Scheduler;

use crate::dataframe::DataFrame;
use crate::error::{Result, SabotError};
use crate::execution::Engine;
use crate::stats::{Stats, StatsCounters};

/// Environment variable naming the default data directory.
pub const DATA_DIR_ENV: &str = "SABOT_DATA_DIR";
/// Data directory used when neither the builder nor [`DATA_DIR_ENV`] names one.
pub const DEFAULT_DATA_DIR: &str = "sabot-data";

/// How long `shutdown` waits for running tasks to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a CSV file is read.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line names the columns (default: true).
    pub has_header: bool,
    /// Field delimiter (default: `,`).
    pub delimiter: u8,
    /// The file's schema; inferred from the first rows when `None`.
    pub schema: Option<SchemaRef>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
            schema: None,
        }
    }
}

/// Configures and builds a [`Sabot`] session.
#[derive(Debug, Clone, Default)]
pub struct SabotBuilder {
    threads: Option<usize>,
    memory_limit_bytes: Option<usize>,
    data_dir: Option<PathBuf>,
    engine: Engine,
    coordinator: Option<String>,
    security: Security,
}

impl SabotBuilder {
    /// Worker threads that run queries (default: one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Most memory that a query's hash tables and sorts may hold, in bytes (default: no limit).
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit_bytes = Some(bytes);
        self
    }

    /// Directory for data the session generates and caches, such as TPC-H data sets
    /// (default: `$SABOT_DATA_DIR`, else `./sabot-data`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Runs the session's queries on the cluster of the coordinator at `address` (see
    /// [`Sabot::distributed`]).
    pub fn coordinator(mut self, address: impl Into<String>) -> Self {
        self.coordinator = Some(address.into());
        self
    }

    /// The cluster's shared token and TLS files, for a session with a coordinator.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// The engine that runs this session's queries unless a query picks another.
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// Starts the session and its worker threads.
    pub fn build(self) -> Result<Sabot> {
        let threads = match self.threads {
            Some(0) => return Err(SabotError::invalid_argument("threads must be at least 1")),
            Some(threads) => threads,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.memory_limit_bytes == Some(0) {
            return Err(SabotError::invalid_argument(
                "memory limit must be more than 0 bytes",
            ));
        }
        let data_dir = self.data_dir.unwrap_or_else(|| {
            std::env::var_os(DATA_DIR_ENV)
                .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from)
        });

        let mut runtime_env = RuntimeEnvBuilder::new();
        if let Some(bytes) = self.memory_limit_bytes {
            runtime_env = runtime_env.with_memory_limit(bytes, 1.0);
        }
        let config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_information_schema(true);
        let context = SessionContext::new_with_config_rt(config, runtime_env.build_arc()?);
        for function in sabot_planner::window_functions() {
            context.register_udf(function);
        }

        let scheduler = Scheduler::new(threads).map_err(|error| SabotError::Execution {
            message: format!("cannot start the scheduler: {error}"),
        })?;
        // Named apart from the scheduler's `sabot-worker-N` threads, so that profiles tell
        // DataFusion's share of a query (fallback subtrees, `--engine datafusion`) from Sabot's.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("sabot-async")
            .enable_all()
            .build()
            .map_err(|error| SabotError::Execution {
                message: format!("cannot start {threads} worker threads: {error}"),
            })?;

        Ok(Sabot {
            inner: Arc::new(SessionInner {
                context,
                executor: Executor::new(Arc::new(scheduler)),
                handle: runtime.handle().clone(),
                runtime: Mutex::new(Some(runtime)),
                shut_down: AtomicBool::new(false),
                stats: StatsCounters::default(),
                streams: StreamTables::default(),
                cluster: self.coordinator.map(|coordinator| Cluster {
                    coordinator,
                    security: self.security,
                    tables: Mutex::new(Vec::new()),
                }),
                settings: Settings {
                    threads,
                    memory_limit_bytes: self.memory_limit_bytes,
                    data_dir,
                    engine: self.engine,
                },
            }),
        })
    }
}

/// What a session was built with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub threads: usize,
    pub memory_limit_bytes: Option<usize>,
    pub data_dir: PathBuf,
    pub engine: Engine,
}

pub(crate) struct SessionInner {
    context: SessionContext,
    executor: Executor,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    shut_down: AtomicBool,
    pub(crate) stats: StatsCounters,
    pub(crate) streams: StreamTables,
    pub(crate) cluster: Option<Cluster>,
    settings: Settings,
}

/// Where a distributed session sends its queries, and the tables they may read.
pub(crate) struct Cluster {
    pub(crate) coordinator: String,
    pub(crate) security: Security,
    pub(crate) tables: Mutex<Vec<TableSource>>,
}

impl SessionInner {
    pub(crate) fn context(&self) -> &SessionContext {
        &self.context
    }

    pub(crate) fn executor(&self) -> &Executor {
        &self.executor
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The async runtime that runs DataFusion's share of queries.
    pub(crate) fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// Runs `future` on the session's workers and waits for it. Safe to call from any thread,
    /// including a thread of another async runtime.
    pub(crate) fn block_on<T, F>(&self, future: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(SabotError::ShutDown);
        }
        let task = self.handle.spawn(future);
        futures::executor::block_on(task).map_err(|error| SabotError::Execution {
            message: format!("query task failed: {error}"),
        })?
    }
}

/// A Sabot session: register tables, run SQL or build DataFrames, read statistics.
///
/// Cloning a `Sabot` gives another handle to the same session.
#[derive(Clone)]
pub struct Sabot {
    inner: Arc<SessionInner>,
}

impl Sabot {
    /// A session on this machine with default settings.
    pub fn local() -> Result<Sabot> {
        Sabot::builder().build()
    }

    /// A session whose queries run on the cluster of the coordinator at `address` (`host:port`
    /// or a URL). Parquet tables registered in it are opened by path in every process, so the
    /// paths must be visible to all of them. Use [`Sabot::builder`] with
    /// [`SabotBuilder::coordinator`] and [`SabotBuilder::security`] for a token or TLS.
    pub fn distributed(address: impl Into<String>) -> Result<Sabot> {
        Sabot::builder().coordinator(address).build()
    }

    /// A builder for a session with chosen settings.
    pub fn builder() -> SabotBuilder {
        SabotBuilder::default()
    }

    /// Registers a stream table SQL can read as `name`; queries over it run as streams
    /// ([`DataFrame::stream`](crate::DataFrame::stream)).
    pub fn register_stream(&self, name: &str, table: StreamTable) -> Result<()> {
        let schema = (table.factory)()?.schema();
        let placeholder = MemTable::try_new(schema, vec![Vec::new()])?;
        self.inner.context.deregister_table(name)?;
        self.inner
            .context
            .register_table(name, Arc::new(placeholder))?;
        self.inner.streams.insert(name, table);
        Ok(())
    }

    /// Registers Nexmark's `person`, `auction` and `bid` streams from the columnar generator
    /// (event time in `date_time`, in order), stopping after `events` events when given.
    pub fn register_nexmark(&self, config: NexmarkConfig, events: Option<u64>) -> Result<()> {
        for table in [
            NexmarkTable::Person,
            NexmarkTable::Auction,
            NexmarkTable::Bid,
        ] {
            let config = config.clone();
            let stream = StreamTable::new(move || {
                let source = NexmarkSource::try_new(config.clone(), table)?;
                Ok(match events {
                    Some(events) => source.with_events(events),
                    None => source,
                })
            })
            .with_watermark("date_time", Duration::ZERO);
            self.register_stream(table.name(), stream)?;
        }
        Ok(())
    }

    /// A stream of `source`'s rows; see [`Stream`](crate::Stream).
    pub fn stream(&self, source: impl crate::stream::StreamSource + 'static) -> crate::Stream {
        crate::Stream::new(self.inner.context.clone(), Box::new(source))
    }

    /// The settings this session was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Registers a Parquet file, or a directory of Parquet files, as table `name`.
    pub fn register_parquet(&self, name: &str, path: impl AsRef<Path>) -> Result<()> {
        let path = existing_path(path.as_ref())?;
        if let Some(cluster) = &self.inner.cluster {
            let absolute = path
                .canonicalize()
                .map_err(|error| SabotError::io(&path, error))?;
            let mut tables = cluster
                .tables
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            tables.retain(|table| table.name != name);
            tables.push(TableSource {
                name: name.to_string(),
                path: absolute.display().to_string(),
            });
        }
        let context = self.inner.context.clone();
        let (table, location, extension) = table_location(name, &path, ".parquet");
        let registered = self.inner.block_on(async move {
            let options = ParquetReadOptions::default().file_extension(&extension);
            context
                .register_parquet(&table, &location, options)
                .await
                .map_err(SabotError::from)
        });
        registered.map_err(|error| unreadable(error, &path, "Parquet"))
    }

    /// Registers a CSV file, or a directory of CSV files, as table `name`.
    pub fn register_csv(
        &self,
        name: &str,
        path: impl AsRef<Path>,
        options: CsvOptions,
    ) -> Result<()> {
        let path = existing_path(path.as_ref())?;
        self.local_only("CSV tables")?;
        let context = self.inner.context.clone();
        let (table, location, extension) = table_location(name, &path, ".csv");
        let registered = self.inner.block_on(async move {
            let mut read_options = CsvReadOptions::new()
                .has_header(options.has_header)
                .delimiter(options.delimiter)
                .file_extension(&extension);
            if let Some(schema) = options.schema.as_deref() {
                read_options = read_options.schema(schema);
            }
            context
                .register_csv(&table, &location, read_options)
                .await
                .map_err(SabotError::from)
        });
        registered.map_err(|error| unreadable(error, &path, "CSV"))
    }

    /// Registers in-memory batches as table `name`. Every batch must have `schema`.
    pub fn register_batches(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        self.local_only("in-memory tables")?;
        let partitions = spread(batches, self.inner.settings.threads);
        let table = MemoryTable::try_new(schema, partitions)?;
        self.inner.context.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Refuses what a distributed session cannot ship to its workers.
    fn local_only(&self, what: &str) -> Result<()> {
        match &self.inner.cluster {
            Some(cluster) => Err(SabotError::NotSupported {
                message: format!(
                    "{what} in a distributed session (coordinator {}): register Parquet files \
                     that every worker can open",
                    cluster.coordinator
                ),
            }),
            None => Ok(()),
        }
    }

    /// Names of the tables registered in this session, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let catalog = self.inner.context.catalog("datafusion");
        let mut names = catalog
            .and_then(|catalog| catalog.schema("public"))
            .map(|schema| schema.table_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Plans a SQL statement. Nothing runs until an action (`collect`, `show`, `count`), except
    /// for `ANALYZE`, which reads its tables at once (see [`Sabot::analyze`]).
    pub fn sql(&self, text: &str) -> Result<DataFrame> {
        if let Some(request) = crate::analyze::analyze_request(text) {
            return self.analyze(request.table.as_deref(), &request.columns);
        }
        let context = self.inner.context.clone();
        let text = text.to_string();
        let text_for_cluster = text.clone();
        let frame = self
            .inner
            .block_on(async move { context.sql(&text).await.map_err(SabotError::from) })?;
        Ok(
            DataFrame::new(frame, Arc::clone(&self.inner), self.inner.settings.engine)
                .with_sql(text_for_cluster),
        )
    }

    /// Reads Parquet table `table` (every Parquet table when `None`) once in full and keeps
    /// statistics of its columns (`columns`; all when empty) for planning: distinct counts
    /// (HyperLogLog), null counts, bounds and equi-depth histograms of integer, date and
    /// decimal columns. Queries planned afterwards estimate from them instead of samples, until
    /// a file of the table changes. Returns a row per analyzed column. Not available in a
    /// distributed session, whose coordinator plans the queries.
    pub fn analyze(&self, table: Option<&str>, columns: &[String]) -> Result<DataFrame> {
        if let Some(cluster) = &self.inner.cluster {
            return Err(SabotError::NotSupported {
                message: format!(
                    "ANALYZE in a distributed session: the coordinator ({}) plans its queries \
                     from its own statistics",
                    cluster.coordinator
                ),
            });
        }
        let names = match table {
            Some(name) => vec![name.to_string()],
            None => self.table_names(),
        };
        let mut batches = Vec::new();
        for name in names {
            let context = self.inner.context.clone();
            let lookup = name.clone();
            let provider = self.inner.block_on(async move {
                context
                    .table_provider(lookup.as_str())
                    .await
                    .map_err(SabotError::from)
            })?;
            let threads = self.inner.settings.threads;
            let summary =
                match crate::analyze::analyze_table(&name, provider.as_ref(), columns, threads) {
                    Some(summary) => summary?,
                    None if table.is_some() => {
                        return Err(SabotError::NotSupported {
                            message: format!(
                                "ANALYZE {name}: only tables of Parquet files are analyzed"
                            ),
                        });
                    }
                    None => continue,
                };
            batches.push(crate::analyze::summary_rows(
                &name,
                &provider.schema(),
                &summary,
            )?);
        }
        let rows = MemTable::try_new(crate::analyze::summary_schema(), vec![batches])?;
        let frame = self.inner.context.read_table(Arc::new(rows))?;
        Ok(DataFrame::new(
            frame,
            Arc::clone(&self.inner),
            self.inner.settings.engine,
        ))
    }

    /// A DataFrame over a registered table.
    pub fn table(&self, name: &str) -> Result<DataFrame> {
        let context = self.inner.context.clone();
        let name = name.to_string();
        let frame = self.inner.block_on(async move {
            context.table(name.as_str()).await.map_err(SabotError::from)
        })?;
        Ok(DataFrame::new(
            frame,
            Arc::clone(&self.inner),
            self.inner.settings.engine,
        ))
    }

    /// Runs a physical plan on the session's workers (a distributed task's share of a query).
    pub(crate) fn run_physical(&self, root: &Arc<PhysicalNode>) -> Result<Vec<RecordBatch>> {
        let budget = Arc::new(MemoryBudget::new(self.inner.settings.memory_limit_bytes));
        Ok(self
            .inner
            .executor
            .run(root, &budget, &CancelHandle::new())?)
    }

    /// Tasks queued or running on the session's workers (0 when no query runs).
    pub fn pending_tasks(&self) -> usize {
        self.inner.executor.pending_tasks()
    }

    /// Cancels `cancel` when the process receives Ctrl-C (SIGINT), instead of being killed.
    pub fn cancel_on_interrupt(&self, cancel: &CancelHandle) {
        let cancel = cancel.clone();
        self.inner.handle.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }

    /// What this session has done so far.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Stops the session's worker threads. Queries started after this fail with
    /// [`SabotError::ShutDown`]; calling it twice is harmless.
    pub fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::Release);
        let runtime = self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match runtime {
            // Blocking inside another async runtime is not allowed: let the threads wind down.
            Some(runtime) if tokio::runtime::Handle::try_current().is_ok() => {
                runtime.shutdown_background()
            }
            Some(runtime) => runtime.shutdown_timeout(SHUTDOWN_GRACE),
            None => {}
        }
    }

    /// Whether [`Sabot::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::Acquire)
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let runtime = self
            .runtime
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

fn existing_path(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        Err(SabotError::FileNotFound {
            path: path.to_path_buf(),
        })
    }
}

/// The table name, the location string DataFusion lists, and the file extension it keeps:
/// a single file is taken whatever its extension, a directory keeps files with `default_extension`.
fn table_location(name: &str, path: &Path, default_extension: &str) -> (String, String, String) {
    let extension = if path.is_file() {
        path.extension().map_or_else(String::new, |extension| {
            format!(".{}", extension.to_string_lossy())
        })
    } else {
        default_extension.to_string()
    };
    (
        name.to_string(),
        path.to_string_lossy().into_owned(),
        extension,
    )
}

/// Turns a registration failure into an error that names the file, unless it already does.
fn unreadable(error: SabotError, path: &Path, format: &'static str) -> SabotError {
    match error {
        SabotError::Execution { message }
        | SabotError::Plan { message }
        | SabotError::NotSupported { message } => SabotError::UnreadableFile {
            path: path.to_path_buf(),
            format,
            message,
        },
        other => other,
    }
}

/// Deals batches round-robin into up to `partitions` partitions so scans run in parallel.
fn spread(batches: Vec<RecordBatch>, partitions: usize) -> Vec<Vec<RecordBatch>> {
    let count = partitions.clamp(1, batches.len().max(1));
    let mut spread = vec![Vec::new(); count];
    for (index, batch) in batches.into_iter().enumerate() {
        spread[index % count].push(batch);
    }
    spread
}
