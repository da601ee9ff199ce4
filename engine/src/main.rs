//! The `sabot` command-line tool: run SQL over Parquet and CSV files, generate TPC-H data and
//! benchmark Sabot against DataFusion.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sabot::distributed::{
    CoordinatorOptions, WorkerOptions, cluster_status, run_coordinator, run_worker,
};
use sabot::distributed::{Security, TlsFiles};
use sabot::tpch::bench::{BenchConfig, QueryTiming};
use sabot::tpch::{QuerySelection, generate};
use sabot::{CancelHandle, CsvOptions, Engine, OutputFormat, Result, Sabot, SabotError};

/// Exit status after Ctrl-C, as shells report a process ended by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sabot: analytics on Apache Arrow. Run SQL over Parquet and CSV files, generate TPC-H data,
/// and benchmark Sabot against DataFusion.
#[derive(Parser)]
#[command(name = "sabot", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    session: SessionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct SessionArgs {
    /// Worker threads that run queries and generate data [default: one per core]
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Most memory a query's operator state (hash tables, join tables, sorts) may hold, in
    /// bytes; suffixes K, M, G (powers of 1024) are accepted, e.g. 4G [default: no limit]
    #[arg(long, global = true, value_parser = parse_bytes)]
    memory_limit: Option<usize>,
    /// Directory for generated and cached data [default: $SABOT_DATA_DIR, else ./sabot-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one SQL statement and print its result (`EXPLAIN [ANALYZE] <query>` shows the
    /// chosen engine's plan)
    Sql(SqlArgs),
    /// TPC-H data
    #[command(subcommand)]
    Tpch(TpchCommand),
    /// Benchmarks that compare engines side by side in one run
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run one streaming SQL query over a source's stream tables until the source ends (or
    /// Ctrl-C). Windows: GROUP BY tumble(time, size), hop(time, slide, size) or
    /// session(time, gap), each giving the window's start. Without --sink, rows are printed as
    /// windows close; with --checkpoint-dir, a restart resumes from the latest checkpoint and
    /// --sink files appear exactly once (when the checkpoint covering them completes).
    Stream(StreamArgs),
    /// Run a coordinator: workers register with it, clients send it queries, and it runs their
    /// stages' tasks on the workers' slots (recomputing what lost workers held)
    Coordinator(CoordinatorArgs),
    /// Run a worker: registers with the coordinator, runs tasks, serves their shuffle outputs
    /// over Arrow Flight (spilled to disk over --shuffle-memory)
    Worker(WorkerArgs),
    /// Print a coordinator's workers and running queries
    Status(StatusArgs),
}

/// How the processes of a cluster authenticate each other.
#[derive(Args)]
struct SecurityArgs {
    /// The cluster's shared secret; every process and client must give the same one
    /// [default: $SABOT_TOKEN; none: no authentication]
    #[arg(long)]
    token: Option<String>,
    /// TLS: this process's certificate (PEM); with --tls-key and --tls-ca
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// TLS: this process's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TLS: the certificate authority that signed the cluster's certificates (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
}

impl SecurityArgs {
    fn security(&self) -> Security {
        Security {
            token: self
                .token
                .clone()
                .or_else(|| std::env::var("SABOT_TOKEN").ok()),
            tls: match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
                (Some(certificate), Some(key), Some(ca_certificate)) => Some(TlsFiles {
                    certificate: certificate.clone(),
                    key: key.clone(),
                    ca_certificate: ca_certificate.clone(),
                }),
                _ => None,
            },
        }
    }
}

#[derive(Args)]
struct CoordinatorArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: String,
    /// A worker silent for this many milliseconds is declared lost
    #[arg(long, default_value_t = 3000)]
    heartbeat_timeout_ms: u64,
    /// Attempts per task before its query fails
    #[arg(long, default_value_t = 4)]
    max_task_attempts: usize,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Args)]
struct WorkerArgs {
    /// The coordinator's address (host:port)
    #[arg(long)]
    coordinator: String,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Address the other processes reach this worker at [default: the bound listen address]
    #[arg(long)]
    advertise: Option<String>,
    /// Tasks this worker runs at once
    #[arg(long, default_value_t = 2)]
    slots: usize,
    /// Directory for shuffle outputs over --shuffle-memory [default: the system's temp dir]
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
    /// Shuffle output kept in memory, in bytes (suffixes K, M, G); the rest spills to disk
    #[arg(long, default_value = "1G", value_parser = parse_bytes)]
    shuffle_memory: usize,
    /// Milliseconds between heartbeats to the coordinator
    #[arg(long, default_value_t = 500)]
    heartbeat_interval_ms: u64,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Args)]
struct StatusArgs {
    /// The coordinator's address (host:port)
    #[arg(long)]
    coordinator: String,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Args)]
struct StreamArgs {
    /// File holding the query
    #[arg(long, value_name = "FILE")]
    sql: PathBuf,
    /// The source: `nexmark` (tables person, auction, bid; event time in date_time), or
    /// NAME=DIR, the files of DIR (read in name order) as table NAME
    #[arg(long, default_value = "nexmark")]
    source: String,
    /// Format of NAME=DIR files: parquet, csv (with a header row) or jsonl
    #[arg(long, default_value = "parquet")]
    source_format: String,
    /// Keep reading new files that appear in DIR (until Ctrl-C)
    #[arg(long)]
    watch: bool,
    /// Event-time column of NAME=DIR files (a timestamp, or Int64 milliseconds); needed for
    /// windows
    #[arg(long, value_name = "COLUMN")]
    event_time: Option<String>,
    /// How late rows of NAME=DIR files may arrive, in milliseconds behind the newest
    #[arg(long, default_value_t = 0)]
    max_delay_ms: u64,
    /// Stop after this many Nexmark events [default: endless]
    #[arg(long)]
    events: Option<u64>,
    /// Write rows to files in DIR (see --format) instead of printing them
    #[arg(long, value_name = "DIR")]
    sink: Option<PathBuf>,
    /// Format of --sink files: parquet or jsonl
    #[arg(long, default_value = "parquet")]
    format: String,
    /// Checkpoint into DIR (and resume from it)
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Milliseconds between checkpoints
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["query", "file"])))]
struct SqlArgs {
    /// Register the eight TPC-H tables found in DIR (DIR/<table>.parquet)
    #[arg(long, value_name = "DIR")]
    tpch: Option<PathBuf>,
    /// Register a table: NAME=PATH, where PATH is a .parquet or .csv file (CSV with a header
    /// row) or a directory of Parquet files; may be repeated
    #[arg(long = "table", value_name = "NAME=PATH", value_parser = parse_table)]
    tables: Vec<(String, PathBuf)>,
    /// Output format: table, csv (header row, dates as YYYY-MM-DD, numbers at full precision) or json
    #[arg(long, default_value = "table")]
    format: OutputFormat,
    /// Engine that runs the query: sabot or datafusion
    #[arg(long, default_value = "sabot")]
    engine: Engine,
    /// The SQL statement; several, separated by ';', run in turn and each result is printed
    /// (e.g. "ANALYZE; SELECT ...": ANALYZE reads every table and the query is planned from
    /// what it found)
    query: Option<String>,
    /// Read the SQL statement(s) from FILE instead
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Run the query on the cluster of this coordinator (host:port); tables must be Parquet
    /// files at paths every worker can read
    #[arg(long, value_name = "ADDR")]
    coordinator: Option<String>,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Subcommand)]
enum TpchCommand {
    /// Generate the eight TPC-H tables as Parquet files, OUT/<table>.parquet
    Gen {
        /// Scale factor, 0.01 to 100 (1 is about 1 GB of raw data, 6 million lineitem rows)
        #[arg(long)]
        sf: f64,
        /// Output directory (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Run TPC-H queries on each engine: 1 warm-up and N timed runs, medians, totals and the
    /// ratio between two engines. Data is generated on first use and cached under the data directory.
    Tpch {
        /// Scale factor, 0.01 to 100
        #[arg(long, default_value_t = 1.0)]
        sf: f64,
        /// Queries to run, e.g. 1,3,5-9 [default: 1-22]
        #[arg(long)]
        queries: Option<QuerySelection>,
        /// Timed runs per query and engine, after one warm-up run
        #[arg(long, default_value_t = 3)]
        iterations: usize,
        /// Comma-separated engines to compare
        #[arg(long, default_value = "sabot,datafusion", value_delimiter = ',')]
        engine: Vec<Engine>,
        /// Also write the results as JSON to FILE
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Check each query's result against DIR/q<N>.csv (a header row, dates as YYYY-MM-DD,
        /// numbers within 1e-6); the command fails if any differs
        #[arg(long, value_name = "DIR")]
        answers: Option<PathBuf>,
        /// Also print every join's and aggregation's estimated and actual rows on Sabot's
        /// engine, with their q-errors (max of estimate/actual and actual/estimate)
        #[arg(long)]
        report_estimates: bool,
        /// Run ANALYZE on every table before the first query (a full read of each; its time is
        /// printed and not counted), so Sabot plans from full statistics instead of samples
        #[arg(long)]
        analyze: bool,
    },
    /// Run TPC-H queries on one process and on a coordinator with worker processes started on
    /// this machine (the same threads in all), side by side, with the bytes each query
    /// shuffled; then the Flight exchange's throughput on loopback beside a raw TCP copy of the
    /// same Arrow IPC bytes (the lineitem table)
    Cluster {
        /// Scale factor, 0.01 to 100
        #[arg(long, default_value_t = 1.0)]
        sf: f64,
        /// Queries to run, e.g. 1,3,5-9 [default: 1-22]
        #[arg(long)]
        queries: Option<QuerySelection>,
        /// Timed runs per query and setup, after one warm-up run
        #[arg(long, default_value_t = 3)]
        iterations: usize,
        /// Worker processes
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Task slots per worker
        #[arg(long, default_value_t = 2)]
        slots: usize,
        /// Check each query's cluster result against DIR/q<N>.csv; the command fails if any
        /// differs
        #[arg(long, value_name = "DIR")]
        answers: Option<PathBuf>,
        /// Also write the results as JSON to FILE
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Run key-value workloads on Sabot's store and on fjall: fill N random keys, read them in
    /// random order, read N missing keys, scan, N/100 synced writes (the stores taking turns),
    /// and fill 10·N keys (flushes and compactions). Stores live under the data directory and
    /// are removed after.
    Kv {
        /// N, the number of keys
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        /// Leave out the 10·N fill
        #[arg(long)]
        no_large_fill: bool,
        /// Sabot's log syncs through io_uring (on) or fdatasync (off)
        #[arg(long, default_value = "on", value_parser = ["on", "off"])]
        io_uring: String,
        /// Also write the results as JSON to FILE
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Run Nexmark queries as streams over the built-in columnar generator, each on one worker
    /// thread with generation included, and print events/s per core beside Flink's published
    /// per-core rates. Sources generate only the tables and columns a query reads; events
    /// counted are the rows they read (bids, for the queries over bids), so the rate never
    /// counts events that were not generated.
    Nexmark {
        /// Events to generate per query (persons, auctions and bids, 1:3:46)
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Comma-separated queries
        #[arg(long, default_value = "q0,q1,q2,q3,q4,q5,q7,q8", value_delimiter = ',')]
        queries: Vec<String>,
        /// Also write the results as JSON to FILE
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    if let Some(missing) = missing_cpu_features() {
        eprintln!(
            "error: this sabot was built for x86-64-v3 CPUs and this CPU lacks {missing}; \
             build it for this CPU with RUSTFLAGS=\"-C target-cpu=native\" cargo build --release"
        );
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(SabotError::Cancelled) => {
            eprintln!("error: the query was cancelled");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The instructions this build was compiled to use (`.cargo/config.toml`) that the CPU lacks,
/// if any: checked before anything else runs, so an older CPU gets this message rather than
/// an illegal-instruction crash.
fn missing_cpu_features() -> Option<&'static str> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return Some("AVX2");
        }
        if !std::arch::is_x86_feature_detected!("bmi2") {
            return Some("BMI2");
        }
        if !std::arch::is_x86_feature_detected!("fma") {
            return Some("FMA");
        }
    }
    None
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sql(args) => run_sql(&cli.session, args),
        Command::Tpch(TpchCommand::Gen { sf, out }) => generate_with_progress(
            sf,
            &out,
            session(&cli.session, Engine::default())?.settings().threads,
        ),
        Command::Bench(BenchCommand::Tpch {
            sf,
            queries,
            iterations,
            engine,
            json,
            answers,
            report_estimates,
            analyze,
        }) => {
            let config = BenchConfig {
                scale_factor: sf,
                queries: queries.unwrap_or_else(QuerySelection::all),
                iterations,
                engines: engine,
                answers,
                report_estimates,
            };
            run_bench(&cli.session, &config, analyze, json.as_deref())
        }
        Command::Bench(BenchCommand::Kv {
            keys,
            no_large_fill,
            io_uring,
            json,
        }) => run_kv_bench(
            &cli.session,
            keys,
            !no_large_fill,
            io_uring == "on",
            json.as_deref(),
        ),
        Command::Bench(BenchCommand::Cluster {
            sf,
            queries,
            iterations,
            workers,
            slots,
            answers,
            json,
        }) => run_cluster_bench(
            &cli.session,
            ClusterBenchArgs {
                sf,
                queries: queries.unwrap_or_else(QuerySelection::all),
                iterations,
                workers,
                slots,
                answers,
            },
            json.as_deref(),
        ),
        Command::Stream(args) => run_stream(&cli.session, args),
        Command::Coordinator(args) => run_coordinator(CoordinatorOptions {
            listen: args.listen,
            heartbeat_timeout: Duration::from_millis(args.heartbeat_timeout_ms),
            max_task_attempts: args.max_task_attempts.max(1),
            security: args.security.security(),
        }),
        Command::Worker(args) => run_worker(WorkerOptions {
            coordinator: args.coordinator,
            listen: args.listen,
            advertise: args.advertise,
            slots: args.slots.max(1),
            threads: cli
                .session
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            spill_dir: args.spill_dir.unwrap_or_else(std::env::temp_dir),
            shuffle_memory_bytes: args.shuffle_memory,
            heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms.max(1)),
            security: args.security.security(),
        }),
        Command::Status(args) => print_status(&args),
        Command::Bench(BenchCommand::Nexmark {
            events,
            queries,
            json,
        }) => run_nexmark_bench(&cli.session, events, queries, json.as_deref()),
    }
}

fn session(args: &SessionArgs, engine: Engine) -> Result<Sabot> {
    let mut builder = Sabot::builder().engine(engine);
    if let Some(threads) = args.threads {
        builder = builder.threads(threads);
    }
    if let Some(bytes) = args.memory_limit {
        builder = builder.memory_limit(bytes);
    }
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    builder.build()
}

fn run_sql(session_args: &SessionArgs, args: SqlArgs) -> Result<()> {
    let sql = match (&args.query, &args.file) {
        (Some(query), _) => query.clone(),
        (None, Some(file)) => std::fs::read_to_string(file).map_err(|error| SabotError::Io {
            path: file.clone(),
            source: error,
        })?,
        (None, None) => {
            return Err(SabotError::InvalidArgument {
                message: "give a query or -f FILE".to_string(),
            });
        }
    };
    let sabot = match &args.coordinator {
        Some(coordinator) => {
            let mut builder = Sabot::builder()
                .coordinator(coordinator)
                .security(args.security.security());
            if let Some(threads) = session_args.threads {
                builder = builder.threads(threads);
            }
            builder.build()?
        }
        None => session(session_args, args.engine)?,
    };
    if let Some(dir) = &args.tpch {
        sabot::tpch::register(&sabot, dir)?;
    }
    for (name, path) in &args.tables {
        register_table(&sabot, name, path)?;
    }
    let cancel = CancelHandle::new();
    sabot.cancel_on_interrupt(&cancel);
    for statement in sql_statements(&sql) {
        let frame = sabot.sql(&statement)?;
        let schema = frame.schema();
        let batches = frame.execute_with_cancel(&cancel)?.batches;
        let mut stdout = std::io::stdout().lock();
        sabot::format::write_batches(&batches, &schema, args.format, &mut stdout)?;
        stdout.flush().map_err(|error| SabotError::Io {
            path: PathBuf::from("<stdout>"),
            source: error,
        })?;
    }
    Ok(())
}

/// The statements of `sql`, one per `;`-separated statement. Text that does not parse is
/// passed on whole, so that planning it reports the syntax error.
fn sql_statements(sql: &str) -> Vec<String> {
    match datafusion::sql::parser::DFParser::parse_sql(sql) {
        Ok(statements) if statements.len() > 1 => statements
            .iter()
            .map(|statement| statement.to_string())
            .collect(),
        _ => vec![sql.to_string()],
    }
}

fn print_status(args: &StatusArgs) -> Result<()> {
    let status = cluster_status(&args.coordinator, &args.security.security())?;
    println!("workers:");
    for worker in &status.workers {
        println!(
            "  {} {} slots={} running={} last_heartbeat={} ms ago",
            worker.address,
            if worker.alive { "alive" } else { "lost" },
            worker.slots,
            worker.running_tasks,
            worker.last_heartbeat_ms
        );
    }
    println!("running queries:");
    for query in &status.queries {
        println!(
            "  {} stages={} tasks={}/{} retries={} sql={}",
            query.id,
            query.stages,
            query.tasks_done,
            query.tasks_total,
            query.retries,
            query.sql.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    println!("running tasks:");
    for task in &status.tasks {
        println!(
            "  query {} stage {} task {} on {} for {} ms",
            task.query, task.stage, task.task, task.worker, task.running_ms
        );
    }
    println!("finished queries (latest last):");
    for query in &status.finished {
        println!(
            "  {} {} ms stages={} shuffle_written={} B shuffle_read={} B retries={}",
            query.id,
            query.millis,
            query.stages,
            query.shuffle_bytes_written,
            query.shuffle_bytes_read,
            query.retries
        );
    }
    Ok(())
}

fn register_table(sabot: &Sabot, name: &str, path: &Path) -> Result<()> {
    let is_csv = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("csv"));
    if is_csv {
        sabot.register_csv(name, path, CsvOptions::default())
    } else {
        sabot.register_parquet(name, path)
    }
}

fn generate_with_progress(sf: f64, out: &Path, threads: usize) -> Result<()> {
    generate::validate_scale_factor(sf)?;
    let total: u64 = sabot::tpch::Table::ALL
        .iter()
        .map(|&table| generate::estimated_rows(table, sf))
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} rows ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("TPC-H SF {sf}"));
    let generated = generate::generate(sf, out, threads, &|rows| bar.inc(rows));
    bar.finish_and_clear();
    generated?;
    eprintln!("wrote the 8 TPC-H tables at SF {sf} to {}", out.display());
    Ok(())
}

fn run_bench(
    session_args: &SessionArgs,
    config: &BenchConfig,
    analyze: bool,
    json: Option<&Path>,
) -> Result<()> {
    generate::validate_scale_factor(config.scale_factor)?;
    let sabot = session(session_args, Engine::default())?;
    let dir = sabot::tpch::cache_dir(&sabot.settings().data_dir, config.scale_factor);
    if generate::is_complete(&dir) {
        eprintln!(
            "using cached TPC-H SF {} data in {}",
            config.scale_factor,
            dir.display()
        );
    } else {
        generate_with_progress(config.scale_factor, &dir, sabot.settings().threads)?;
    }
    sabot::tpch::register(&sabot, &dir)?;
    if analyze {
        let started = std::time::Instant::now();
        let columns = sabot.analyze(None, &[])?.count()?;
        eprintln!(
            "ANALYZE: {columns} columns of every table in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    let report = sabot::tpch::bench::run(&sabot, config, |timing: &QueryTiming| {
        eprintln!(
            "Q{:<2} {:<10} median {:.3} s",
            timing.query, timing.engine, timing.median_s
        );
    })?;
    println!("{}", report.to_table());
    if config.report_estimates {
        println!("{}", report.estimates_table());
    }
    #[cfg(feature = "cuda")]
    eprintln!("{}", gpu_summary());
    if let Some(path) = json {
        std::fs::write(path, report.to_json()?).map_err(|error| SabotError::Io {
            path: path.to_path_buf(),
            source: error,
        })?;
        eprintln!("wrote {}", path.display());
    }
    if report.any_answer_differs() {
        return Err(SabotError::Execution {
            message: "some results differ from their reference answers (listed above)".to_string(),
        });
    }
    Ok(())
}

/// Which GPU the run had and how many join probe keys it looked up (the `cuda` feature).
#[cfg(feature = "cuda")]
fn gpu_summary() -> String {
    use sabot_exec::cuda::{Gpu, device_probe_rows};
    match Gpu::shared() {
        Ok(gpu) => format!(
            "GPU: {}; {} join probe keys were looked up on it",
            gpu.description(),
            device_probe_rows()
        ),
        Err(reason) => format!("GPU: none, every kernel ran on the CPU ({reason})"),
    }
}

struct ClusterBenchArgs {
    sf: f64,
    queries: QuerySelection,
    iterations: usize,
    workers: usize,
    slots: usize,
    answers: Option<PathBuf>,
}

fn run_cluster_bench(
    session_args: &SessionArgs,
    args: ClusterBenchArgs,
    json: Option<&Path>,
) -> Result<()> {
    generate::validate_scale_factor(args.sf)?;
    let sabot = session(session_args, Engine::default())?;
    let settings = sabot.settings().clone();
    let data = sabot::tpch::cache_dir(&settings.data_dir, args.sf);
    if !generate::is_complete(&data) {
        generate_with_progress(args.sf, &data, settings.threads)?;
    }
    drop(sabot);
    let program = std::env::current_exe().map_err(|error| SabotError::Io {
        path: PathBuf::from("sabot"),
        source: error,
    })?;
    let config = sabot::cluster_bench::ClusterBenchConfig {
        scale_factor: args.sf,
        data: data.canonicalize().map_err(|error| SabotError::Io {
            path: data.clone(),
            source: error,
        })?,
        queries: args.queries,
        iterations: args.iterations,
        workers: args.workers,
        slots: args.slots,
        threads: settings.threads,
        program,
        answers: args.answers,
        work_dir: settings.data_dir.join("cluster-bench"),
    };
    let report = sabot::cluster_bench::run(&config, |timing| {
        eprintln!(
            "Q{:<2} single {:.3} s, cluster {:.3} s, shuffled {} bytes",
            timing.query, timing.single_process_s, timing.cluster_s, timing.shuffle_bytes_written
        );
    })?;
    println!("{}", report.to_table());
    if let Some(path) = json {
        write_json(path, &report)?;
    }
    if report.any_answer_differs() {
        return Err(SabotError::Execution {
            message: "some cluster results differ from their reference answers".to_string(),
        });
    }
    Ok(())
}

fn run_kv_bench(
    session_args: &SessionArgs,
    keys: usize,
    large_fill: bool,
    io_uring: bool,
    json: Option<&Path>,
) -> Result<()> {
    let data_dir = session(session_args, Engine::default())?
        .settings()
        .data_dir
        .clone();
    let config = sabot::kv_bench::KvBenchConfig {
        keys,
        dir: data_dir.join("kv-bench"),
        large_fill,
        io_uring,
    };
    let report = sabot::kv_bench::run(&config, |timing| {
        eprintln!(
            "{:<14} {:<6} {:>12.0} ops/s ({:.3} s)",
            timing.workload,
            timing.store,
            timing.operations_per_second(),
            timing.seconds
        );
    })?;
    println!("{}", report.to_table());
    if let Some(path) = json {
        write_json(path, &report.summary())?;
    }
    Ok(())
}

fn run_stream(session_args: &SessionArgs, args: StreamArgs) -> Result<()> {
    use sabot::StreamTable;
    use sabot::stream::{
        FileFormat, FileSink, FileSource, NexmarkConfig, SourceFormat, StreamSink,
    };
    let sabot = session(session_args, Engine::default())?;
    match args.source.split_once('=') {
        None if args.source == "nexmark" => {
            sabot.register_nexmark(NexmarkConfig::default(), args.events)?
        }
        None => {
            return Err(SabotError::InvalidArgument {
                message: format!("unknown source {}; use nexmark or NAME=DIR", args.source),
            });
        }
        Some((name, dir)) => {
            let format = match args.source_format.as_str() {
                "parquet" => SourceFormat::Parquet,
                "csv" => SourceFormat::Csv,
                "jsonl" => SourceFormat::JsonLines,
                other => {
                    return Err(SabotError::InvalidArgument {
                        message: format!(
                            "unknown --source-format {other}; known: parquet, csv, jsonl"
                        ),
                    });
                }
            };
            let (dir, watch) = (PathBuf::from(dir), args.watch);
            let mut table = StreamTable::new(move || {
                let source = FileSource::try_new(&dir, format)?;
                Ok(if watch { source.watching() } else { source })
            });
            if let Some(column) = &args.event_time {
                table = table
                    .with_watermark(column, std::time::Duration::from_millis(args.max_delay_ms));
            }
            sabot.register_stream(name, table)?;
        }
    }
    let text = std::fs::read_to_string(&args.sql).map_err(|error| SabotError::Io {
        path: args.sql.clone(),
        source: error,
    })?;
    let mut stream = sabot.sql(&text)?.stream()?;
    if let Some(dir) = &args.checkpoint_dir {
        stream = stream.with_checkpoints(
            dir,
            std::time::Duration::from_millis(args.checkpoint_interval_ms),
        );
    }
    let sink: Box<dyn StreamSink> = match &args.sink {
        Some(dir) => {
            let format = match args.format.as_str() {
                "parquet" => FileFormat::Parquet,
                "jsonl" => FileFormat::JsonLines,
                other => {
                    return Err(SabotError::InvalidArgument {
                        message: format!("unknown --format {other}; known: parquet, jsonl"),
                    });
                }
            };
            Box::new(FileSink::try_new(dir, format)?)
        }
        None => Box::new(PrintSink),
    };
    let job = stream.start(sink)?;
    sabot.cancel_on_interrupt(&job.stop_handle());
    let stats = job.wait()?;
    eprintln!(
        "{} rows in, {} rows out, {} late, {} checkpoints{} in {:.3} s{}",
        stats.rows_in,
        stats.rows_out,
        stats.late_rows,
        stats.checkpoints,
        stats
            .restored_from
            .map(|id| format!(" (resumed from checkpoint {id})"))
            .unwrap_or_default(),
        stats.elapsed.as_secs_f64(),
        if stats.stopped { ", stopped" } else { "" }
    );
    Ok(())
}

/// Prints each batch of a stream's output as a table as it arrives.
struct PrintSink;

impl sabot::stream::StreamSink for PrintSink {
    fn write(&mut self, batch: arrow::record_batch::RecordBatch) -> sabot::stream::ExecResult<()> {
        let text = arrow::util::pretty::pretty_format_batches(&[batch]).map_err(|error| {
            sabot::stream::ExecError::Sink {
                sink: "stdout".to_string(),
                message: error.to_string(),
            }
        })?;
        println!("{text}");
        Ok(())
    }
}

fn run_nexmark_bench(
    session_args: &SessionArgs,
    events: u64,
    queries: Vec<String>,
    json: Option<&Path>,
) -> Result<()> {
    let sabot = session(session_args, Engine::default())?;
    let config = sabot::nexmark_bench::NexmarkBenchConfig {
        events,
        queries,
        model: sabot::stream::NexmarkConfig::default(),
    };
    let report = sabot::nexmark_bench::run(&sabot, &config, |timing| {
        eprintln!(
            "{:<4} {:>12.0} events/s/core ({} events in {:.3} s, {} rows out)",
            timing.name,
            timing.events_per_s_per_core,
            timing.events,
            timing.seconds,
            timing.output_rows
        );
    })?;
    println!("{}", report.to_table());
    if let Some(path) = json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn write_json(path: &Path, report: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|error| SabotError::Execution {
        message: format!("cannot write the report as JSON: {error}"),
    })?;
    std::fs::write(path, text).map_err(|error| SabotError::Io {
        path: path.to_path_buf(),
        source: error,
    })?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn parse_table(text: &str) -> std::result::Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.trim().is_empty() && !path.trim().is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(path.trim())))
        }
        _ => Err(format!("expected NAME=PATH, got '{text}'")),
    }
}

fn parse_bytes(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("expected a byte count such as 4G or 1048576, got '{text}'"))?;
    let shift = match suffix
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => {
            return Err(format!(
                "unknown size suffix '{other}' in '{text}': use K, M, G or T"
            ));
        }
    };
    number
        .checked_mul(1usize << shift)
        .ok_or_else(|| format!("byte count '{text}' is too large"))
}
