//! A coordinator and worker processes started on this machine, on loopback ports the
//! system picks: what `sabot bench cluster` measures, and what the distributed tests run
//! against. The processes are killed when the cluster is dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::error::{Result, SabotError};

/// What to start.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// The `sabot` binary.
    pub program: PathBuf,
    pub workers: usize,
    /// Flags every process gets (`--token`, TLS files).
    pub common_args: Vec<String>,
    /// Flags of the coordinator only.
    pub coordinator_args: Vec<String>,
    /// Flags of each worker only (`--slots`, `--spill-dir`); global flags such as `--threads`
    /// go in `worker_global_args`.
    pub worker_args: Vec<String>,
    pub worker_global_args: Vec<String>,
    /// Where the coordinator's log (its standard error) goes.
    pub log: PathBuf,
}

/// A running local cluster.
pub struct LocalCluster {
    config: LocalClusterConfig,
    coordinator: Child,
    address: String,
    workers: Vec<Child>,
}

impl LocalCluster {
    /// Starts the coordinator, then the workers one by one, each once the previous one has
    /// registered.
    pub fn start(config: LocalClusterConfig) -> Result<LocalCluster> {
        let log = std::fs::File::create(&config.log)
            .map_err(|error| SabotError::io(&config.log, error))?;
        let mut command = Command::new(&config.program);
        command
            .args(["coordinator", "--listen", "127.0.0.1:0"])
            .args(&config.common_args)
            .args(&config.coordinator_args)
            .stderr(log);
        let (coordinator, first_line) = spawn_and_read_line(command, &config.program)?;
        let address = served_address(&first_line).ok_or_else(|| SabotError::Cluster {
            message: format!("the coordinator did not start: {first_line:?}"),
        })?;
        let mut cluster = LocalCluster {
            config,
            coordinator,
            address,
            workers: Vec::new(),
        };
        for _ in 0..cluster.config.workers {
            let worker = cluster.spawn_worker(&cluster.config.common_args.clone())?;
            cluster.workers.push(worker);
        }
        Ok(cluster)
    }

    /// The coordinator's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The coordinator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.config.log).unwrap_or_default()
    }

    /// Starts one more worker with `common_args` in place of the cluster's (another token,
    /// say), and returns it once it has registered; or the error it exited with.
    pub fn spawn_worker(&self, common_args: &[String]) -> Result<Child> {
        let mut command = Command::new(&self.config.program);
        command
            .args(&self.config.worker_global_args)
            .args(["worker", "--coordinator", &self.address])
            .args(&self.config.worker_args)
            .args(common_args)
            .env_remove("SABOT_TOKEN")
            .stderr(Stdio::piped());
        let (child, line) = spawn_and_read_line(command, &self.config.program)?;
        if served_address(&line).is_some() {
            return Ok(child);
        }
        let output = child
            .wait_with_output()
            .map_err(|error| SabotError::io(&self.config.program, error))?;
        Err(SabotError::Cluster {
            message: format!(
                "the worker exited: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }

    /// Kills worker `index` (SIGKILL).
    pub fn kill_worker(&mut self, index: usize) -> Result<()> {
        let worker = self.workers.get_mut(index).ok_or_else(|| {
            SabotError::invalid_argument(format!("the cluster has no worker {index}"))
        })?;
        worker
            .kill()
            .map_err(|error| SabotError::io(&self.config.program, error))?;
        // Reaping is all that is left; a worker already gone is as good.
        let _ = worker.wait();
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain([&mut self.coordinator]) {
            // Already-dead children refuse the kill; nothing else is left to do either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `command` with its standard output piped and reads its first line.
fn spawn_and_read_line(mut command: Command, program: &PathBuf) -> Result<(Child, String)> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| SabotError::io(program, error))?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|error| SabotError::io(program, error))?;
    }
    Ok((child, line))
}

/// The address in a "… serving on ADDR …" line.
fn served_address(line: &str) -> Option<String> {
    line.split("serving on ")
        .nth(1)?
        .split_whitespace()
        .next()
        .map(|address| address.trim_end_matches(',').to_string())
}
