//! Distributed mode on one machine: start a coordinator and two worker processes on loopback,
//! run TPC-H queries through the coordinator, show a query's stages, and read the coordinator's
//! status (workers, and what each query shuffled).
//!
//! The processes are the `sabot` binary; build it first, then run the example:
//! `cargo build --release -p sabot && cargo run --release -p sabot --example cluster`.
//! (`SABOT_BIN` names another binary.)

use std::path::PathBuf;

use sabot::distributed::{LocalCluster, LocalClusterConfig, Security, cluster_status};
use sabot::{Sabot, SabotError};

fn main() -> sabot::Result<()> {
    let program = std::env::var_os("SABOT_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let examples = std::env::current_exe().ok()?;
            Some(examples.parent()?.parent()?.join("sabot"))
        })
        .filter(|path| path.exists())
        .ok_or_else(|| SabotError::InvalidArgument {
            message: "no sabot binary: run `cargo build --release -p sabot` first".to_string(),
        })?;
    let work = std::env::temp_dir().join(format!("sabot-cluster-example-{}", std::process::id()));
    let data = work.join("tpch");
    sabot::tpch::generate::generate(0.01, &data, 2, &|_| {})?;

    let token = "example-secret".to_string();
    let cluster = LocalCluster::start(LocalClusterConfig {
        program,
        workers: 2,
        common_args: vec!["--token".to_string(), token.clone()],
        coordinator_args: Vec::new(),
        worker_args: vec!["--slots".to_string(), "2".to_string()],
        worker_global_args: vec!["--threads".to_string(), "1".to_string()],
        log: work.join("coordinator.log"),
    })?;
    println!("coordinator on {}", cluster.address());

    let security = Security {
        token: Some(token),
        tls: None,
    };
    let sabot = Sabot::builder()
        .coordinator(cluster.address())
        .security(security.clone())
        .build()?;
    sabot::tpch::register(
        &sabot,
        &data.canonicalize().map_err(|error| SabotError::Io {
            path: data.clone(),
            source: error,
        })?,
    )?;

    let q3 = sabot::tpch::query(3)?;
    sabot.sql(q3)?.show()?;
    sabot.sql(&format!("EXPLAIN {q3}"))?.show()?;
    sabot
        .sql("SELECT l_returnflag, count(*) AS n FROM lineitem GROUP BY l_returnflag ORDER BY 1")?
        .show()?;

    let status = cluster_status(cluster.address(), &security)?;
    for worker in &status.workers {
        println!(
            "worker {} alive={} slots={}",
            worker.address, worker.alive, worker.slots
        );
    }
    for query in &status.finished {
        println!(
            "query {}: {} ms, {} stages, {} bytes shuffled",
            query.id, query.millis, query.stages, query.shuffle_bytes_written
        );
    }
    drop(cluster);
    std::fs::remove_dir_all(&work).map_err(|error| SabotError::Io {
        path: work,
        source: error,
    })
}
