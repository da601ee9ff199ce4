//! Distributed mode end to end: a coordinator and worker processes on loopback run every
//! TPC-H query at SF 0.1 with the reference answers, refuse requests without the cluster's
//! token, finish a query whose worker is killed while it runs, and fail cleanly when every
//! worker is killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sabot::distributed::{Security, cluster_status};
use sabot::tpch::answers::ReferenceAnswer;
use sabot::tpch::generate;
use sabot::{Result, Sabot};

const TOKEN: &str = "test-cluster-secret";

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The SF 0.1 data set the end-to-end tests share (generated once under `target/`).
fn tpch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = repository_root().join("target/sabot-test-data/tpch-sf0.1");
        if !generate::is_complete(&dir) {
            generate::generate(0.1, &dir, 2, &|_| {}).expect("generate TPC-H SF 0.1");
        }
        dir
    })
}

fn security(token: Option<&str>) -> Security {
    Security {
        token: token.map(str::to_string),
        tls: None,
    }
}

/// A coordinator and its workers, killed when dropped.
struct Cluster {
    coordinator: Child,
    address: String,
    workers: Vec<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts `command` and returns it with the address its first stdout line ends with
/// ("… serving on <ADDR>[ …]").
fn start_serving(mut command: Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a sabot process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("serving on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, address)
}

impl Cluster {
    fn start(workers: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("coordinator.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sabot"));
        command
            .args(["coordinator", "--listen", "127.0.0.1:0", "--token", TOKEN])
            .args(["--heartbeat-timeout-ms", "1500"])
            .stderr(std::fs::File::create(&log).unwrap());
        let (coordinator, address) = start_serving(command);
        let mut cluster = Cluster {
            coordinator,
            address,
            workers: Vec::new(),
            log,
            _dir: dir,
        };
        for _ in 0..workers {
            let worker = cluster.start_worker(Some(TOKEN));
            cluster.workers.push(worker.expect("a worker registers"));
        }
        cluster
    }

    /// A worker process, once it has registered; or the error it exited with.
    fn start_worker(&self, token: Option<&str>) -> std::result::Result<Child, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sabot"));
        command
            .args(["--threads", "1", "worker", "--coordinator", &self.address])
            .args(["--slots", "2", "--heartbeat-interval-ms", "200"])
            .args(["--spill-dir", self._dir.path().to_str().unwrap()])
            .env_remove("SABOT_TOKEN")
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.contains("serving on") {
            return Ok(child);
        }
        let output = child.wait_with_output().unwrap();
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }

    fn session(&self) -> Sabot {
        let sabot = Sabot::builder()
            .threads(1)
            .coordinator(&self.address)
            .security(security(Some(TOKEN)))
            .build()
            .unwrap();
        sabot::tpch::register(&sabot, tpch_dir()).unwrap();
        sabot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the coordinator reports a running query with at least one task done.
    fn wait_for_progress(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let status = cluster_status(&self.address, &security(Some(TOKEN))).unwrap();
            if status.queries.iter().any(|query| query.tasks_done > 0) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the query made no progress in 60 s");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain([&mut self.coordinator]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn check_answer(query: usize, sabot: &Sabot) -> Result<()> {
    let frame = sabot.sql(sabot::tpch::query(query).unwrap())?;
    let schema = frame.schema();
    let batches = frame.collect()?;
    let answers = repository_root().join("tests/tpch/answers/sf0.1");
    let expected = ReferenceAnswer::for_query(&answers, query).unwrap();
    if let Some(mismatch) = expected.mismatch(&schema, &batches).unwrap() {
        panic!("Q{query} on the cluster: {mismatch}");
    }
    Ok(())
}

#[test]
fn every_tpch_query_gives_the_reference_answer_on_three_workers() {
    let cluster = Cluster::start(3);
    let sabot = cluster.session();
    for query in 1..=22 {
        check_answer(query, &sabot).unwrap_or_else(|error| panic!("Q{query}: {error}"));
    }
    let explained = sabot
        .sql(&format!("EXPLAIN {}", sabot::tpch::query(9).unwrap()))
        .unwrap()
        .collect()
        .unwrap();
    let text = sabot::arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    for expected in ["Stage 0 (6 tasks)", "hash-partitioned on", "ExchangeRead: stage"] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
    let log = cluster.log();
    assert!(log.contains("finished on"), "{log}");
    assert!(!log.contains("lost"), "{log}");
}

#[test]
fn requests_without_the_cluster_token_are_refused() {
    let cluster = Cluster::start(1);
    for token in [None, Some("wrong")] {
        let refused = cluster_status(&cluster.address, &security(token)).unwrap_err();
        assert!(refused.to_string().contains("token"), "{refused}");

        let client = Sabot::builder()
            .coordinator(&cluster.address)
            .security(security(token))
            .build()
            .unwrap();
        let error = client.sql("SELECT 1").unwrap().collect().unwrap_err();
        assert!(error.to_string().contains("refused"), "{error}");

        let worker_error = cluster.start_worker(token).unwrap_err();
        assert!(worker_error.contains("refused"), "{worker_error}");
    }
    let status = cluster_status(&cluster.address, &security(Some(TOKEN))).unwrap();
    assert_eq!(status.workers.len(), 1, "{status:?}");
    assert!(status.workers[0].alive);
}

#[test]
fn a_query_finishes_with_the_right_answer_when_a_worker_is_killed_while_it_runs() {
    let mut cluster = Cluster::start(3);
    let sabot = cluster.session();
    let running = std::thread::spawn(move || check_answer(9, &sabot));
    cluster.wait_for_progress();
    cluster.workers[0].kill().unwrap();
    running
        .join()
        .unwrap()
        .expect("Q9 finishes on the two workers left");
    let log = cluster.log();
    assert!(log.contains("will retry"), "no task was retried: {log}");
    assert!(log.contains("lost"), "{log}");
}

#[test]
fn a_query_fails_with_a_clear_error_when_every_worker_is_killed() {
    let mut cluster = Cluster::start(2);
    let sabot = cluster.session();
    let running = std::thread::spawn(move || check_answer(18, &sabot));
    cluster.wait_for_progress();
    for worker in &mut cluster.workers {
        worker.kill().unwrap();
    }
    let error = running.join().unwrap().unwrap_err().to_string();
    assert!(error.contains("every worker was lost"), "{error}");
    let status = cluster_status(&cluster.address, &security(Some(TOKEN))).unwrap();
    assert!(status.workers.iter().all(|worker| !worker.alive), "{status:?}");
}
