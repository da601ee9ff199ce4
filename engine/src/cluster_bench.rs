//! The benchmark behind `sabot bench cluster`: every TPC-H query on one process and on a
//! coordinator with worker processes started on this machine (the same threads in total),
//! side by side in one run, with the bytes each query shuffled; then the Flight exchange's
//! throughput on loopback beside a raw TCP copy of the same Arrow IPC bytes.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sabot_shuffle::{
    Bytes, Handler, Peer, ResultStream, Security, ShuffleError, Ticket, batch_stream,
};
use serde::Serialize;

use crate::distributed::{LocalCluster, LocalClusterConfig, cluster_status};
use crate::error::{Result, SabotError};
use crate::session::Sabot;
use crate::tpch::answers::ReferenceAnswer;
use crate::tpch::bench::median;
use crate::tpch::{QuerySelection, Table, query};

/// What to run.
#[derive(Debug, Clone)]
pub struct ClusterBenchConfig {
    pub scale_factor: f64,
    /// The TPC-H data set (`<dir>/<table>.parquet`).
    pub data: PathBuf,
    pub queries: QuerySelection,
    pub iterations: usize,
    pub workers: usize,
    pub slots: usize,
    /// Threads in all: the single process gets them all, each worker its share.
    pub threads: usize,
    /// The `sabot` binary that the coordinator and workers run.
    pub program: PathBuf,
    /// Reference answers to check each query's first run against.
    pub answers: Option<PathBuf>,
    /// Where the coordinator's log and the workers' spill files go.
    pub work_dir: PathBuf,
}

/// One query both ways.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterQueryTiming {
    pub query: usize,
    pub single_process_s: f64,
    pub cluster_s: f64,
    pub stages: usize,
    pub shuffle_bytes_written: u64,
    pub shuffle_bytes_read: u64,
    /// "ok", or how the cluster's answer differs from the reference.
    pub answer: Option<String>,
}

/// The exchange's throughput on loopback.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeTiming {
    /// Arrow IPC bytes moved per run.
    pub bytes: u64,
    pub flight_gb_per_s: f64,
    pub tcp_gb_per_s: f64,
}

/// The results of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBenchReport {
    pub scale_factor: f64,
    pub iterations: usize,
    pub workers: usize,
    pub slots: usize,
    pub threads: usize,
    pub timings: Vec<ClusterQueryTiming>,
    pub exchange: ExchangeTiming,
}

/// Runs the benchmark; `on_timing` is called as each query finishes both ways.
pub fn run(
    config: &ClusterBenchConfig,
    mut on_timing: impl FnMut(&ClusterQueryTiming),
) -> Result<ClusterBenchReport> {
    if config.iterations == 0 || config.workers == 0 {
        return Err(SabotError::invalid_argument(
            "iterations and workers must be at least 1",
        ));
    }
    let threads_per_worker = (config.threads / config.workers).max(1);
    std::fs::create_dir_all(&config.work_dir)
        .map_err(|error| SabotError::io(&config.work_dir, error))?;
    let token = format!("bench-{}", std::process::id());
    let cluster = LocalCluster::start(LocalClusterConfig {
        program: config.program.clone(),
        workers: config.workers,
        common_args: vec!["--token".to_string(), token.clone()],
        coordinator_args: Vec::new(),
        worker_args: vec![
            "--slots".to_string(),
            config.slots.to_string(),
            "--spill-dir".to_string(),
            config.work_dir.display().to_string(),
        ],
        worker_global_args: vec!["--threads".to_string(), threads_per_worker.to_string()],
        log: config.work_dir.join("coordinator.log"),
    })?;
    let security = Security {
        token: Some(token),
        tls: None,
    };
    let single = Sabot::builder().threads(config.threads).build()?;
    crate::tpch::register(&single, &config.data)?;
    let distributed = Sabot::builder()
        .threads(1)
        .coordinator(cluster.address())
        .security(security.clone())
        .build()?;
    crate::tpch::register(&distributed, &config.data)?;

    let mut timings = Vec::new();
    for &number in &config.queries.0 {
        let sql = query(number)?;
        let answer = config
            .answers
            .as_deref()
            .map(|dir| ReferenceAnswer::for_query(dir, number))
            .transpose()?;
        let single_process_s = time_runs(&single, sql, config.iterations, None)?.0;
        let (cluster_s, checked) =
            time_runs(&distributed, sql, config.iterations, answer.as_ref())?;
        let status = cluster_status(cluster.address(), &security)?;
        let last = status.finished.last().ok_or_else(|| SabotError::Cluster {
            message: "the coordinator reported no finished query".to_string(),
        })?;
        let timing = ClusterQueryTiming {
            query: number,
            single_process_s,
            cluster_s,
            stages: last.stages,
            shuffle_bytes_written: last.shuffle_bytes_written,
            shuffle_bytes_read: last.shuffle_bytes_read,
            answer: checked,
        };
        on_timing(&timing);
        timings.push(timing);
    }
    drop(cluster);
    let exchange = measure_exchange(&Table::Lineitem.path_in(&config.data))?;
    Ok(ClusterBenchReport {
        scale_factor: config.scale_factor,
        iterations: config.iterations,
        workers: config.workers,
        slots: config.slots,
        threads: config.threads,
        timings,
        exchange,
    })
}

/// A warm-up run (checked against `answer`), then the median of `iterations` timed runs.
fn time_runs(
    sabot: &Sabot,
    sql: &str,
    iterations: usize,
    answer: Option<&ReferenceAnswer>,
) -> Result<(f64, Option<String>)> {
    let frame = sabot.sql(sql)?;
    let schema = frame.schema();
    let batches = frame.collect()?;
    let checked = answer
        .map(|answer| answer.verdict(&schema, &batches))
        .transpose()?;
    let mut runs = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        sabot.sql(sql)?.collect()?;
        runs.push(started.elapsed().as_secs_f64());
    }
    Ok((median(&runs), checked))
}

/// Runs of each transfer; the best is reported (the least disturbed by other work).
const EXCHANGE_RUNS: usize = 3;

/// The lineitem table moved over Flight `do_get` (encoded, sent, decoded into batches) and
/// as its Arrow IPC stream over a plain TCP socket (copied, not decoded), on loopback.
fn measure_exchange(lineitem: &Path) -> Result<ExchangeTiming> {
    let file = std::fs::File::open(lineitem).map_err(|error| SabotError::io(lineitem, error))?;
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.with_batch_size(65_536).build())
        .map_err(|error| SabotError::UnreadableFile {
            path: lineitem.to_path_buf(),
            format: "Parquet",
            message: error.to_string(),
        })?
        .collect::<std::result::Result<_, _>>()?;
    let schema = batches
        .first()
        .map(RecordBatch::schema)
        .ok_or_else(|| SabotError::invalid_argument("lineitem is empty"))?;
    let mut ipc = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut ipc, &schema)?;
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    let bytes = ipc.len() as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| SabotError::Execution {
            message: format!("cannot start the benchmark's runtime: {error}"),
        })?;
    let flight_s = runtime.block_on(time_flight(Arc::new(batches), schema))?;
    let tcp_s = time_tcp(Arc::new(ipc))?;
    Ok(ExchangeTiming {
        bytes,
        flight_gb_per_s: bytes as f64 / flight_s / 1e9,
        tcp_gb_per_s: bytes as f64 / tcp_s / 1e9,
    })
}

/// Serves a fixed list of batches for any shuffle ticket.
struct FixedBatches {
    batches: Arc<Vec<RecordBatch>>,
    schema: SchemaRef,
}

#[sabot_shuffle::async_trait]
impl Handler for FixedBatches {
    async fn action(&self, name: &str, _body: Bytes) -> sabot_shuffle::Result<Vec<u8>> {
        Err(ShuffleError::Invalid(format!("no action {name}")))
    }

    async fn stream(&self, _ticket: Ticket) -> sabot_shuffle::Result<(SchemaRef, ResultStream)> {
        let batches = self.batches.as_ref().clone();
        Ok((Arc::clone(&self.schema), batch_stream(batches)))
    }
}

async fn time_flight(batches: Arc<Vec<RecordBatch>>, schema: SchemaRef) -> Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| SabotError::Execution {
            message: format!("cannot listen on loopback: {error}"),
        })?;
    let address = listener
        .local_addr()
        .map_err(|error| SabotError::Execution {
            message: error.to_string(),
        })?
        .to_string();
    let handler: Arc<dyn Handler> = Arc::new(FixedBatches {
        batches: Arc::clone(&batches),
        schema,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        sabot_shuffle::serve(listener, handler, &Security::default(), async {
            let _ = stopped.await;
        })
        .await
    });
    let mut peer = Peer::connect(&address, &Security::default()).await?;
    let ticket = Ticket::Shuffle {
        query: 0,
        stage: 0,
        task: 0,
        bucket: 0,
    };
    let mut best = f64::INFINITY;
    for _ in 0..EXCHANGE_RUNS {
        let started = Instant::now();
        let received = peer.fetch(&ticket).await?;
        best = best.min(started.elapsed().as_secs_f64());
        let rows: usize = received.iter().map(RecordBatch::num_rows).sum();
        let sent: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != sent {
            return Err(SabotError::Execution {
                message: format!("Flight delivered {rows} of {sent} rows"),
            });
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(best)
}

fn time_tcp(ipc: Arc<Vec<u8>>) -> Result<f64> {
    let io_error = |error: std::io::Error| SabotError::Execution {
        message: format!("loopback TCP copy: {error}"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error)?;
    let address = listener.local_addr().map_err(io_error)?;
    let sender_bytes = Arc::clone(&ipc);
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..EXCHANGE_RUNS {
            let (mut stream, _) = listener.accept()?;
            stream.set_nodelay(true)?;
            for chunk in sender_bytes.chunks(1 << 20) {
                stream.write_all(chunk)?;
            }
        }
        Ok(())
    });
    let mut best = f64::INFINITY;
    let mut buffer = vec![0u8; 1 << 20];
    for _ in 0..EXCHANGE_RUNS {
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).map_err(io_error)?;
        let mut received = 0usize;
        loop {
            let read = stream.read(&mut buffer).map_err(io_error)?;
            if read == 0 {
                break;
            }
            received += read;
        }
        best = best.min(started.elapsed().as_secs_f64());
        if received != ipc.len() {
            return Err(SabotError::Execution {
                message: format!("TCP delivered {received} of {} bytes", ipc.len()),
            });
        }
    }
    sender
        .join()
        .map_err(|_| SabotError::Execution {
            message: "the TCP sender panicked".to_string(),
        })?
        .map_err(io_error)?;
    Ok(best)
}

impl ClusterBenchReport {
    /// The report as text tables.
    pub fn to_table(&self) -> String {
        let mut text = format!(
            "TPC-H SF {}: median of {} run(s) after 1 warm-up, seconds; one process with {} \
             threads vs a coordinator and {} workers ({} slots, {} threads each)\n",
            self.scale_factor,
            self.iterations,
            self.threads,
            self.workers,
            self.slots,
            (self.threads / self.workers).max(1)
        );
        let _ = writeln!(
            text,
            "{:<6} {:>9} {:>9} {:>7} {:>7} {:>14} {:>14} {:>7}",
            "query",
            "single",
            "cluster",
            "ratio",
            "stages",
            "shuffle_write",
            "shuffle_read",
            "answer"
        );
        let (mut single_total, mut cluster_total, mut written, mut read) = (0.0, 0.0, 0u64, 0u64);
        for timing in &self.timings {
            single_total += timing.single_process_s;
            cluster_total += timing.cluster_s;
            written += timing.shuffle_bytes_written;
            read += timing.shuffle_bytes_read;
            let _ = writeln!(
                text,
                "Q{:<5} {:>9.3} {:>9.3} {:>7.2} {:>7} {:>14} {:>14} {:>7}",
                timing.query,
                timing.single_process_s,
                timing.cluster_s,
                timing.cluster_s / timing.single_process_s.max(1e-9),
                timing.stages,
                megabytes(timing.shuffle_bytes_written),
                megabytes(timing.shuffle_bytes_read),
                timing.answer.as_deref().unwrap_or("-")
            );
        }
        let _ = writeln!(
            text,
            "{:<6} {:>9.3} {:>9.3} {:>7.2} {:>7} {:>14} {:>14}",
            "total",
            single_total,
            cluster_total,
            cluster_total / single_total.max(1e-9),
            "",
            megabytes(written),
            megabytes(read)
        );
        let _ = writeln!(
            text,
            "\nExchange on loopback, {:.0} MB of Arrow IPC (lineitem), best of {EXCHANGE_RUNS}: \
             Flight do_get {:.2} GB/s, raw TCP copy {:.2} GB/s, Flight/TCP {:.2}",
            self.exchange.bytes as f64 / 1e6,
            self.exchange.flight_gb_per_s,
            self.exchange.tcp_gb_per_s,
            self.exchange.flight_gb_per_s / self.exchange.tcp_gb_per_s.max(1e-9)
        );
        text
    }

    /// Whether any checked answer differs from its reference.
    pub fn any_answer_differs(&self) -> bool {
        self.timings.iter().any(|timing| {
            timing
                .answer
                .as_deref()
                .is_some_and(|answer| answer != "ok")
        })
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
