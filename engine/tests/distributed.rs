//! Distributed mode end to end: a coordinator and worker processes on loopback run every
//! TPC-H query at SF 0.1 with the reference answers, refuse requests without the cluster's
//! token, finish a query whose worker is killed while it runs, and fail cleanly when every
//! worker is killed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sabot::distributed::{LocalCluster, LocalClusterConfig, Security, TlsFiles, cluster_status};
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

/// A local cluster with the test's token, and the TLS files it was given.
struct Cluster {
    inner: LocalCluster,
    address: String,
    tls: Option<TlsFiles>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(workers: usize) -> Cluster {
        Cluster::start_with(workers, tempfile::tempdir().unwrap(), None)
    }

    /// A cluster whose processes serve TLS with certificates signed by a new authority.
    fn start_with_tls(workers: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let certificate = params.signed_by(&key, &ca).unwrap();
        let tls = TlsFiles {
            certificate: write("node.pem", certificate.pem()),
            key: write("node.key", key.serialize_pem()),
            ca_certificate: write("ca.pem", ca.pem()),
        };
        Cluster::start_with(workers, dir, Some(tls))
    }

    /// A cluster whose workers keep no shuffle output in memory: all of it goes through
    /// spill files.
    fn start_spilling(workers: usize) -> Cluster {
        Cluster::start_with_worker_args(
            workers,
            tempfile::tempdir().unwrap(),
            None,
            &["--shuffle-memory", "0"],
        )
    }

    fn start_with(workers: usize, dir: tempfile::TempDir, tls: Option<TlsFiles>) -> Cluster {
        Cluster::start_with_worker_args(workers, dir, tls, &[])
    }

    fn start_with_worker_args(
        workers: usize,
        dir: tempfile::TempDir,
        tls: Option<TlsFiles>,
        extra_worker_args: &[&str],
    ) -> Cluster {
        let mut common_args = vec!["--token".to_string(), TOKEN.to_string()];
        if let Some(tls) = &tls {
            for (flag, path) in [
                ("--tls-cert", &tls.certificate),
                ("--tls-key", &tls.key),
                ("--tls-ca", &tls.ca_certificate),
            ] {
                common_args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        let strings = |args: &[&str]| args.iter().map(|arg| arg.to_string()).collect();
        let inner = LocalCluster::start(LocalClusterConfig {
            program: PathBuf::from(env!("CARGO_BIN_EXE_sabot")),
            workers,
            common_args,
            coordinator_args: strings(&["--heartbeat-timeout-ms", "1500"]),
            worker_args: [
                strings(&["--slots", "2", "--heartbeat-interval-ms", "200"]),
                vec!["--spill-dir".to_string(), dir.path().display().to_string()],
                strings(extra_worker_args),
            ]
            .concat(),
            worker_global_args: strings(&["--threads", "1"]),
            log: dir.path().join("coordinator.log"),
        })
        .expect("start the cluster");
        Cluster {
            address: inner.address().to_string(),
            inner,
            tls,
            _dir: dir,
        }
    }

    /// The client settings of this cluster: its token, and its TLS files if it has any.
    fn security(&self) -> Security {
        Security {
            token: Some(TOKEN.to_string()),
            tls: self.tls.clone(),
        }
    }

    fn session(&self) -> Sabot {
        let sabot = Sabot::builder()
            .threads(1)
            .coordinator(&self.address)
            .security(self.security())
            .build()
            .unwrap();
        sabot::tpch::register(&sabot, tpch_dir()).unwrap();
        sabot
    }

    fn log(&self) -> String {
        self.inner.log()
    }

    /// Waits until the coordinator reports a running query with at least one task done.
    fn wait_for_progress(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let status = cluster_status(&self.address, &self.security()).unwrap();
            if status.queries.iter().any(|query| query.tasks_done > 0) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the query made no progress in 60 s");
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
    for expected in [
        "Stage 0 (6 tasks)",
        "hash-partitioned on",
        "ExchangeRead: stage",
    ] {
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

        let args: Vec<String> = token
            .map(|token| vec!["--token".to_string(), token.to_string()])
            .unwrap_or_default();
        let worker_error = cluster.inner.spawn_worker(&args).unwrap_err().to_string();
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
    cluster.inner.kill_worker(0).unwrap();
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
    for worker in 0..2 {
        cluster.inner.kill_worker(worker).unwrap();
    }
    let error = running.join().unwrap().unwrap_err().to_string();
    assert!(error.contains("every worker was lost"), "{error}");
    let status = cluster_status(&cluster.address, &security(Some(TOKEN))).unwrap();
    assert!(
        status.workers.iter().all(|worker| !worker.alive),
        "{status:?}"
    );
}

#[test]
fn a_cluster_over_tls_answers_and_refuses_plain_connections() {
    let cluster = Cluster::start_with_tls(2);
    let sabot = cluster.session();
    for query in [6, 12] {
        check_answer(query, &sabot).unwrap_or_else(|error| panic!("Q{query}: {error}"));
    }
    let status = cluster_status(&cluster.address, &cluster.security()).unwrap();
    assert_eq!(status.workers.len(), 2, "{status:?}");

    let plain = cluster_status(&cluster.address, &security(Some(TOKEN))).unwrap_err();
    assert!(plain.to_string().contains(&cluster.address), "{plain}");
    let untrusting = Security {
        token: Some(TOKEN.to_string()),
        tls: Some(TlsFiles {
            ca_certificate: cluster.tls.as_ref().unwrap().certificate.clone(),
            ..cluster.tls.clone().unwrap()
        }),
    };
    let refused = cluster_status(&cluster.address, &untrusting).unwrap_err();
    assert!(refused.to_string().contains(&cluster.address), "{refused}");
}

#[test]
fn shuffle_outputs_spilled_to_disk_give_the_reference_answers() {
    let cluster = Cluster::start_spilling(2);
    let sabot = cluster.session();
    for query in [3, 9, 18] {
        check_answer(query, &sabot).unwrap_or_else(|error| panic!("Q{query}: {error}"));
    }
}
