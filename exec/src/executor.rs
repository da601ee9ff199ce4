//! Runs a physical plan: cuts it into pipelines at breakers, runs each pipeline's morsels as
//! tasks on the scheduler (one task per morsel, work-stealing across workers), and feeds each
//! pipeline's output into its sink. What a pipeline needs before it starts (its joins' tables,
//! a source that is itself a breaker's output, a union's inputs) is made at once, so that the
//! serial steps of one (building a table from its rows) overlap the scans of the others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arrow::array::RecordBatchOptions;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::PhysicalExpr;
use sabot_scheduler::Scheduler;

use crate::aggregate::{AggregateSink, evaluate_all};
use crate::concurrent::{Job, concurrently};
use crate::error::{ExecError, Result};
use crate::filter::FilterPredicate;
use crate::join::{JoinKind, JoinSpec, JoinTable};
use crate::memory::MemoryBudget;
use crate::page_pruning::{KeyPages, prunes_pages};
use crate::plan::{NodeKind, PhysicalNode};
use crate::sort::{limit_batches, sort_batches};
use crate::source::ParquetScan;

/// Lets another thread stop a running query: its tasks stop at their next batch, tasks not yet
/// started are skipped, and the run ends with [`ExecError::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct CancelHandle {
    cancelled: Arc<AtomicBool>,
    /// The handle this one was made from, whose cancellation cancels this one too.
    outer: Option<Box<CancelHandle>>,
}

impl CancelHandle {
    /// A handle for one query run.
    pub fn new() -> CancelHandle {
        CancelHandle::default()
    }

    /// A handle cancelled with this one, or alone: a run stops its own work through it
    /// without cancelling the caller's handle.
    pub(crate) fn inner(&self) -> CancelHandle {
        CancelHandle {
            cancelled: Arc::default(),
            outer: Some(Box::new(self.clone())),
        }
    }

    /// Asks the query to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Whether [`CancelHandle::cancel`] was called (on this handle or the one it was made from).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || self
                .outer
                .as_ref()
                .is_some_and(|outer| outer.is_cancelled())
    }

    fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(ExecError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What one run of a plan shares: its memory budget and its cancellation.
struct Run {
    budget: Arc<MemoryBudget>,
    cancel: CancelHandle,
    /// The nodes the plan reaches by more than one path (one subquery used twice, as TPC-H
    /// Q15's view), by address: each runs once, and its output is kept for the other paths.
    shared: HashSet<usize>,
    /// Per shared node, its output once run; a path that wants it while another runs it waits.
    shared_outputs: Mutex<HashMap<usize, Arc<SharedOutput>>>,
}

/// The output of a node several paths reach, set by the first path to run it.
type SharedOutput = Mutex<Option<Vec<RecordBatch>>>;

/// Runs physical plans on a scheduler.
#[derive(Clone)]
pub struct Executor {
    scheduler: Arc<Scheduler>,
}

/// A source and the streaming operators (filter, projection, join probe) its morsels flow through.
struct Pipeline {
    source: PipelineSource,
    /// Streaming operators, in the order a batch meets them.
    operators: Vec<StreamingOperator>,
}

/// A streaming operator of a pipeline and what it does to each batch.
struct StreamingOperator {
    node: Arc<PhysicalNode>,
    step: Step,
}

enum Step {
    /// Drops the rows whose key (source column `column`) a later join's table cannot match
    /// (see `key_filters`).
    KeyFilter {
        table: Arc<JoinTable>,
        column: usize,
        pass_rate: Arc<PassRate>,
    },
    Filter(FilterPredicate),
    Project(Vec<Arc<dyn PhysicalExpr>>),
    /// Probes the join table (built by then).
    Probe(Arc<JoinTable>, Arc<JoinSpec>),
}

enum PipelineSource {
    /// A Parquet scan (and its node, for metrics): one morsel per row group, reading only the
    /// pages that may hold `key_pages`' keys; with `narrow`, small decimals as `Decimal64`
    /// (the pipeline's first filter widens them).
    Parquet {
        scan: Arc<ParquetScan>,
        node: Arc<PhysicalNode>,
        key_pages: Arc<Vec<KeyPages>>,
        narrow: bool,
    },
    /// Batches already in memory: one morsel per batch.
    Batches(Arc<Vec<RecordBatch>>),
}

type BatchSink = dyn Fn(usize, RecordBatch) -> Result<()> + Send + Sync;

impl Executor {
    /// An executor whose pipelines run on `scheduler`.
    pub fn new(scheduler: Arc<Scheduler>) -> Executor {
        Executor { scheduler }
    }

    /// Runs the plan rooted at `root` and returns its output, holding operator state within
    /// `budget`, until it ends or `cancel` is cancelled.
    pub fn run(
        &self,
        root: &Arc<PhysicalNode>,
        budget: &Arc<MemoryBudget>,
        cancel: &CancelHandle,
    ) -> Result<Vec<RecordBatch>> {
        let run = Run {
            budget: Arc::clone(budget),
            // Cancelled when part of the plan fails, so that the parts running beside it stop.
            cancel: cancel.inner(),
            shared: nodes_reached_twice(root),
            shared_outputs: Mutex::new(HashMap::new()),
        };
        self.materialize(root, &run)
    }

    /// The number of tasks queued or running on this executor's workers.
    pub fn pending_tasks(&self) -> usize {
        self.scheduler.pending_tasks()
    }

    /// Runs `node` to completion and returns all its output batches, in order; a node reached
    /// by several paths runs on the first.
    fn materialize(&self, node: &Arc<PhysicalNode>, run: &Run) -> Result<Vec<RecordBatch>> {
        let address = Arc::as_ptr(node) as usize;
        if !run.shared.contains(&address) {
            return self.run_to_completion(node, run);
        }
        let slot = Arc::clone(
            run.shared_outputs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(address)
                .or_default(),
        );
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(output) = &*slot {
            return Ok(output.clone());
        }
        let output = self.run_to_completion(node, run)?;
        *slot = Some(output.clone());
        Ok(output)
    }

    /// Runs `node` to completion and returns all its output batches, in order.
    fn run_to_completion(&self, node: &Arc<PhysicalNode>, run: &Run) -> Result<Vec<RecordBatch>> {
        let output = match &node.kind {
            NodeKind::Aggregate { input, spec } => {
                let pipeline = self.pipeline(input, run)?;
                let sink = Arc::new(AggregateSink::new(
                    Arc::clone(node),
                    Arc::clone(spec),
                    Arc::clone(&run.budget),
                ));
                let consumer = Arc::clone(&sink);
                let timed = Arc::clone(node);
                self.drive(
                    pipeline,
                    run,
                    Arc::new(move |_, batch: RecordBatch| {
                        let started = Instant::now();
                        let consumed = consumer.consume(&batch);
                        timed.metrics.record_time(started.elapsed());
                        consumed
                    }),
                )?;
                let started = Instant::now();
                let output = sink.finish(&self.scheduler)?;
                node.metrics.record_time(started.elapsed());
                return Ok(output);
            }
            NodeKind::Sort { input, keys, fetch } => {
                let input = self.materialize(input, run)?;
                let started = Instant::now();
                let sorted = sort_batches(
                    &input,
                    &node.schema,
                    keys,
                    *fetch,
                    &run.budget,
                    &self.scheduler,
                )?;
                node.metrics.record_time(started.elapsed());
                node.metrics.record_memory(run.budget.peak_bytes());
                sorted
            }
            NodeKind::HashJoin { probe, build, spec } if spec.emits_build_side() => {
                let sink = SinkBuild { node, build, spec };
                let (pipeline, table) = self.pipeline_into(probe, Some(sink), run)?;
                let table = table.ok_or_else(|| ExecError::Internal {
                    operator: "HashJoin",
                    message: "the pipeline into a join came back without its table".to_string(),
                })?;
                let pairs: Arc<Mutex<Vec<(usize, RecordBatch)>>> = Arc::new(Mutex::new(Vec::new()));
                let (marking, marking_spec, timed, into) = (
                    Arc::clone(&table),
                    Arc::clone(spec),
                    Arc::clone(node),
                    Arc::clone(&pairs),
                );
                self.drive(
                    pipeline,
                    run,
                    Arc::new(move |morsel, batch: RecordBatch| {
                        let started = Instant::now();
                        let matched =
                            marking.probe_marking(&marking_spec, &batch, &timed.schema)?;
                        timed.metrics.record_time(started.elapsed());
                        if let Some(matched) = matched {
                            into.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((morsel, matched));
                        }
                        Ok(())
                    }),
                )?;
                let mut pairs =
                    std::mem::take(&mut *pairs.lock().unwrap_or_else(PoisonError::into_inner));
                pairs.sort_by_key(|(morsel, _)| *morsel);
                let mut output: Vec<RecordBatch> =
                    pairs.into_iter().map(|(_, batch)| batch).collect();
                output.push(table.emit_build_side(spec, &node.schema)?);
                output
            }
            NodeKind::Limit { input, skip, fetch } => {
                limit_batches(self.materialize(input, run)?, *skip, *fetch)
            }
            NodeKind::Union { inputs } => {
                let jobs = inputs
                    .iter()
                    .map(|input| -> Job<'_, Vec<RecordBatch>> {
                        Box::new(move || self.materialize(input, run))
                    })
                    .collect();
                let mut output = Vec::new();
                for batches in concurrently(jobs, &run.cancel)? {
                    for batch in batches {
                        output.push(as_union_rows(batch, &node.schema)?);
                    }
                }
                output
            }
            NodeKind::Fallback(fallback) => {
                let started = Instant::now();
                let output = fallback.collect(&run.cancel)?;
                node.metrics.record_time(started.elapsed());
                output
            }
            NodeKind::ParquetScan(_)
            | NodeKind::Batches { .. }
            | NodeKind::Filter { .. }
            | NodeKind::Projection { .. }
            | NodeKind::HashJoin { .. } => {
                let pipeline = self.pipeline(node, run)?;
                return self.collect(pipeline, run);
            }
        };
        for batch in &output {
            node.metrics.record_output(batch.num_rows());
        }
        Ok(output)
    }

    /// The pipeline that produces `node`'s output: streaming operators down to a source,
    /// running any breaker below them first.
    fn pipeline(&self, node: &Arc<PhysicalNode>, run: &Run) -> Result<Pipeline> {
        Ok(self.pipeline_into(node, None, run)?.0)
    }

    /// [`Executor::pipeline`] of `node`, and the table of `sink` (a join that emits its build
    /// side, whose probe input `node` is, and which the pipeline's output marks) when given: the
    /// sink may then also filter the source's rows by key. The pipeline's join tables, the
    /// sink's and a source that must run first are made at once, each on its own thread, so
    /// that one's serial steps (building a table from its rows) overlap another's scan.
    fn pipeline_into(
        &self,
        node: &Arc<PhysicalNode>,
        sink: Option<SinkBuild<'_>>,
        run: &Run,
    ) -> Result<(Pipeline, Option<Arc<JoinTable>>)> {
        let mut operators = Vec::new();
        let mut joins = Vec::new();
        let mut current = node;
        loop {
            current = match &current.kind {
                NodeKind::Filter { input, predicate } => {
                    operators.push(Some(StreamingOperator {
                        node: Arc::clone(current),
                        step: Step::Filter(FilterPredicate::new(predicate, &current.schema)),
                    }));
                    input
                }
                NodeKind::Projection { input, exprs } => {
                    operators.push(Some(StreamingOperator {
                        node: Arc::clone(current),
                        step: Step::Project(exprs.clone()),
                    }));
                    input
                }
                NodeKind::HashJoin { probe, build, spec } if !spec.emits_build_side() => {
                    joins.push((operators.len(), current, build, spec));
                    operators.push(None);
                    probe
                }
                _ => break,
            };
        }
        let source_node = current;
        let mut jobs: Vec<Job<'_, Made>> = joins
            .iter()
            .map(|&(_, join, build, spec)| -> Job<'_, Made> {
                Box::new(move || self.join_table(join, build, spec, run).map(Made::Table))
            })
            .collect();
        if let Some(sink) = sink {
            jobs.push(Box::new(move || {
                self.join_table(sink.node, sink.build, sink.spec, run)
                    .map(Made::Table)
            }));
        }
        let source = match &source_node.kind {
            NodeKind::ParquetScan(scan) => Some(PipelineSource::Parquet {
                scan: Arc::clone(scan),
                node: Arc::clone(source_node),
                key_pages: Arc::default(),
                narrow: false,
            }),
            NodeKind::Batches { batches, .. } => {
                for batch in batches {
                    source_node.metrics.record_output(batch.num_rows());
                }
                Some(PipelineSource::Batches(Arc::new(batches.clone())))
            }
            _ => {
                jobs.push(Box::new(move || {
                    self.materialize(source_node, run).map(Made::Batches)
                }));
                None
            }
        };
        let mut made = concurrently(jobs, &run.cancel)?.into_iter();
        let mut next_table = || match made.next() {
            Some(Made::Table(table)) => Ok(table),
            _ => Err(ExecError::Internal {
                operator: "HashJoin",
                message: "a join's table was not made".to_string(),
            }),
        };
        for &(position, join, _, spec) in &joins {
            operators[position] = Some(StreamingOperator {
                node: Arc::clone(join),
                step: Step::Probe(next_table()?, Arc::clone(spec)),
            });
        }
        let sink = match sink {
            Some(sink) => Some((sink, next_table()?)),
            None => None,
        };
        let source = match (source, made.next()) {
            (Some(source), None) => source,
            (None, Some(Made::Batches(batches))) => PipelineSource::Batches(Arc::new(batches)),
            _ => {
                return Err(ExecError::Internal {
                    operator: "Executor",
                    message: "a pipeline's source was not made".to_string(),
                });
            }
        };
        let mut operators: Vec<StreamingOperator> = operators.into_iter().flatten().collect();
        operators.reverse();
        let sink_join = sink.as_ref().map(|(sink, table)| SinkJoin {
            node: sink.node,
            table,
            spec: sink.spec,
        });
        let joins = match_only_joins(&operators, sink_join, source_node);
        let (key_filters, key_pages) = (key_filters(&joins), key_pages(&joins, source_node)?);
        let source = match source {
            PipelineSource::Parquet { scan, node, .. } => {
                let narrow = read_narrow(&scan, &mut operators, &key_filters);
                PipelineSource::Parquet {
                    scan,
                    node,
                    key_pages: Arc::new(key_pages),
                    narrow,
                }
            }
            batches => batches,
        };
        operators.splice(0..0, key_filters);
        Ok((Pipeline { source, operators }, sink.map(|(_, table)| table)))
    }

    /// Runs the build side of join `node` and builds its table, timing it as the join's work.
    fn join_table(
        &self,
        node: &Arc<PhysicalNode>,
        build: &Arc<PhysicalNode>,
        spec: &JoinSpec,
        run: &Run,
    ) -> Result<Arc<JoinTable>> {
        let build_batches = self.materialize(build, run)?;
        let started = Instant::now();
        let table = JoinTable::build(
            spec,
            &build_batches,
            &build.schema,
            &run.budget,
            &self.scheduler,
        )?;
        node.metrics.record_time(started.elapsed());
        node.metrics.record_memory(run.budget.used_bytes());
        Ok(Arc::new(table))
    }

    /// Runs `pipeline` and returns its output in source order.
    fn collect(&self, pipeline: Pipeline, run: &Run) -> Result<Vec<RecordBatch>> {
        let collected: Arc<Mutex<Vec<(usize, usize, RecordBatch)>>> =
            Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&collected);
        self.drive(
            pipeline,
            run,
            Arc::new(move |morsel, batch| {
                let mut collected = into.lock().unwrap_or_else(PoisonError::into_inner);
                let sequence = collected.len();
                collected.push((morsel, sequence, batch));
                Ok(())
            }),
        )?;
        let mut collected =
            std::mem::take(&mut *collected.lock().unwrap_or_else(PoisonError::into_inner));
        collected.sort_unstable_by_key(|(morsel, sequence, _)| (*morsel, *sequence));
        Ok(collected.into_iter().map(|(_, _, batch)| batch).collect())
    }

    /// Runs one task per morsel of `pipeline`, pushing each batch through the operators into `sink`.
    fn drive(&self, pipeline: Pipeline, run: &Run, sink: Arc<BatchSink>) -> Result<()> {
        run.cancel.check()?;
        let group = self.scheduler.group();
        let failure: Arc<Mutex<Option<ExecError>>> = Arc::new(Mutex::new(None));
        let operators = Arc::new(pipeline.operators);
        let report = {
            let failure = Arc::clone(&failure);
            move |group: &sabot_scheduler::TaskGroup, error: ExecError| {
                failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
                group.cancel();
            }
        };
        match pipeline.source {
            PipelineSource::Parquet {
                scan,
                node,
                key_pages,
                narrow,
            } => {
                for (index, morsel) in scan
                    .morsels(self.scheduler.threads())
                    .into_iter()
                    .enumerate()
                {
                    let cancel = run.cancel.clone();
                    let (scan, node, key_pages, operators, sink, report) = (
                        Arc::clone(&scan),
                        Arc::clone(&node),
                        Arc::clone(&key_pages),
                        Arc::clone(&operators),
                        Arc::clone(&sink),
                        report.clone(),
                    );
                    group.spawn(move |group| {
                        let mut started = Instant::now();
                        let read = scan.read(morsel, &key_pages, narrow, |batch| {
                            node.metrics.record_time(started.elapsed());
                            node.metrics.record_output(batch.num_rows());
                            let pushed = push_through(&operators, batch)
                                .and_then(|batch| batch.map_or(Ok(()), |batch| sink(index, batch)));
                            started = Instant::now();
                            if group.is_cancelled() {
                                return Err(ExecError::Cancelled);
                            }
                            cancel.check()?;
                            pushed
                        });
                        if let Err(error) = read {
                            report(group, error);
                        }
                    });
                }
            }
            PipelineSource::Batches(batches) => {
                for index in 0..batches.len() {
                    let cancel = run.cancel.clone();
                    let (batches, operators, sink, report) = (
                        Arc::clone(&batches),
                        Arc::clone(&operators),
                        Arc::clone(&sink),
                        report.clone(),
                    );
                    group.spawn(move |group| {
                        let pushed = cancel
                            .check()
                            .and_then(|()| push_through(&operators, batches[index].clone()))
                            .and_then(|batch| batch.map_or(Ok(()), |batch| sink(index, batch)));
                        if let Err(error) = pushed {
                            report(group, error);
                        }
                    });
                }
            }
        }
        let waited = group.wait();
        if let Some(error) = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(error);
        }
        waited.map_err(ExecError::from)
    }
}

/// The addresses of the nodes under `root` that more than one path reaches.
fn nodes_reached_twice(root: &Arc<PhysicalNode>) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut twice = HashSet::new();
    let mut pending = vec![root];
    while let Some(node) = pending.pop() {
        let address = Arc::as_ptr(node) as usize;
        if seen.insert(address) {
            pending.extend(node.inputs());
        } else {
            twice.insert(address);
        }
    }
    twice
}

/// Pushes `batch` through the streaming operators; `None` when a filter removed every row.
/// A key filter that lets through more than this share of the rows it has seen stops filtering.
const KEY_FILTER_MAX_PASS_RATE: f64 = 0.5;
/// Rows a key filter sees before it judges its pass rate.
const KEY_FILTER_TRIAL_ROWS: u64 = 65_536;

/// How many rows a key filter has seen and let through, to turn itself off where it keeps
/// most of them (a join that finds a match for most probe rows gains nothing from it).
#[derive(Default)]
struct PassRate {
    seen: AtomicU64,
    kept: AtomicU64,
    off: AtomicBool,
}

impl PassRate {
    fn worth_it(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    fn record(&self, seen: usize, kept: usize) {
        let seen = self.seen.fetch_add(seen as u64, Ordering::Relaxed) + seen as u64;
        let kept = self.kept.fetch_add(kept as u64, Ordering::Relaxed) + kept as u64;
        if seen >= KEY_FILTER_TRIAL_ROWS && kept as f64 > seen as f64 * KEY_FILTER_MAX_PASS_RATE {
            self.off.store(true, Ordering::Relaxed);
        }
    }
}

/// A join that emits its build side after its probe pipeline, which marks the join's table.
#[derive(Clone, Copy)]
struct SinkJoin<'a> {
    node: &'a Arc<PhysicalNode>,
    table: &'a Arc<JoinTable>,
    spec: &'a JoinSpec,
}

/// A join that emits its build side, before its table is built: the join, its build input and
/// what it computes.
#[derive(Clone, Copy)]
struct SinkBuild<'a> {
    node: &'a Arc<PhysicalNode>,
    build: &'a Arc<PhysicalNode>,
    spec: &'a JoinSpec,
}

/// What a pipeline needs made before it runs: a join's table, or its source's rows.
enum Made {
    Table(Arc<JoinTable>),
    Batches(Vec<RecordBatch>),
}

/// A join of a pipeline whose output has only probe rows with a match (inner and semi joins
/// probed in the pipeline with no other join's probe before them, whose output would otherwise
/// count only the rows this one can match; a sink join other than a full join, whose output is
/// its build side's rows), keyed on one column that comes unchanged from the pipeline's source:
/// its probe rows without a match may be dropped as early as the source.
struct MatchOnlyJoin<'a> {
    node: &'a Arc<PhysicalNode>,
    table: &'a Arc<JoinTable>,
    spec: &'a JoinSpec,
    /// The source column holding the probe key.
    column: usize,
    /// Whether a filter runs before the join, on rows the join may drop.
    after_filter: bool,
}

/// The [`MatchOnlyJoin`]s of a pipeline from `source` through `operators` (and into `sink`).
fn match_only_joins<'a>(
    operators: &'a [StreamingOperator],
    sink: Option<SinkJoin<'a>>,
    source: &PhysicalNode,
) -> Vec<MatchOnlyJoin<'a>> {
    let probes = operators
        .iter()
        .enumerate()
        .filter_map(|(position, operator)| match &operator.step {
            Step::Probe(table, spec)
                if matches!(spec.kind, JoinKind::Inner | JoinKind::LeftSemi) =>
            {
                Some((position, &operator.node, table, spec.as_ref()))
            }
            _ => None,
        });
    let sink = sink
        .filter(|sink| sink.spec.kind != JoinKind::Full)
        .map(|sink| (operators.len(), sink.node, sink.table, sink.spec));
    let mut joins = Vec::new();
    for (position, node, table, spec) in probes.chain(sink) {
        let earlier = &operators[..position];
        if earlier
            .iter()
            .any(|earlier| matches!(earlier.step, Step::Probe(..)))
        {
            continue;
        }
        let NodeKind::HashJoin { probe, .. } = &node.kind else {
            continue;
        };
        let [key] = spec.probe_keys.as_slice() else {
            continue;
        };
        let Some(key) = key.downcast_ref::<Column>() else {
            continue;
        };
        let Some(column) = source_column(probe, key.index(), source) else {
            continue;
        };
        if source.schema.field(column).data_type() != probe.schema.field(key.index()).data_type() {
            continue;
        }
        joins.push(MatchOnlyJoin {
            node,
            table,
            spec,
            column,
            after_filter: earlier
                .iter()
                .any(|earlier| matches!(earlier.step, Step::Filter(_))),
        });
    }
    joins
}

/// Key filters for `joins`, to run on the source's batches before any operator (sideways
/// information passing): for a join after a filter that would otherwise work on the rows it
/// drops (TPC-H Q3: `lineitem`'s date filter copies half the table, of which 1% has an order
/// the join keeps; Q4: its date comparison runs on every line, of which 4% have an order the
/// semi join marks), with a table that tells misses without lookups (indexed by key, or with a
/// key bitmap). A filter that lets most rows through turns itself off ([`PassRate`]).
fn key_filters(joins: &[MatchOnlyJoin<'_>]) -> Vec<StreamingOperator> {
    joins
        .iter()
        .filter(|join| join.after_filter && join.table.has_key_filter())
        .map(|join| StreamingOperator {
            node: Arc::clone(join.node),
            step: Step::KeyFilter {
                table: Arc::clone(join.table),
                column: join.column,
                pass_rate: Arc::default(),
            },
        })
        .collect()
}

/// The most build keys a join's table prunes its probe scan's pages with: beyond, nearly every
/// page of a large scan holds one, and finding them costs more than it saves.
const MAX_PAGE_PRUNING_KEYS: usize = 4_096;

/// The build keys of `joins` with at most [`MAX_PAGE_PRUNING_KEYS`] build rows, for a Parquet
/// `source` to read only the pages that may hold one (`page_pruning`).
fn key_pages(joins: &[MatchOnlyJoin<'_>], source: &PhysicalNode) -> Result<Vec<KeyPages>> {
    if !matches!(source.kind, NodeKind::ParquetScan(_)) {
        return Ok(Vec::new());
    }
    let mut pages = Vec::new();
    for join in joins {
        if !prunes_pages(source.schema.field(join.column).data_type()) {
            continue;
        }
        if let Some(keys) = join
            .table
            .build_key_values(join.spec, MAX_PAGE_PRUNING_KEYS)?
        {
            pages.push(KeyPages {
                column: join.column,
                keys,
            });
        }
    }
    Ok(pages)
}

/// The column of `source`'s output that column `index` of `node` (a node above it) is,
/// passed on unchanged through column projections, filters and joins' probe sides.
fn source_column(node: &PhysicalNode, index: usize, source: &PhysicalNode) -> Option<usize> {
    let (mut node, mut index) = (node, index);
    while !std::ptr::eq(node, source) {
        (node, index) = node.input_column(index)?;
    }
    Some(index)
}

/// Whether `scan` should read its small decimals narrow for the pipeline `operators` (its
/// key filters `key_filters` ahead of them): where the first operator is a filter or a join
/// probe, which widen the rows they keep or join, and no key (of a key filter or of that join)
/// is a narrowed column. Sets the filter up.
fn read_narrow(
    scan: &ParquetScan,
    operators: &mut [StreamingOperator],
    key_filters: &[StreamingOperator],
) -> bool {
    let Some(narrow_schema) = scan.narrow_schema() else {
        return false;
    };
    let stays_wide = |column: usize| {
        narrow_schema.field(column).data_type() == scan.schema().field(column).data_type()
    };
    let keys_stay_wide = key_filters.iter().all(|filter| match &filter.step {
        Step::KeyFilter { column, .. } => stays_wide(*column),
        _ => true,
    });
    match operators.first_mut() {
        Some(StreamingOperator {
            node,
            step: Step::Filter(predicate),
        }) if keys_stay_wide => predicate.read_narrow(&node.schema, narrow_schema),
        // The join widens the decimals of the rows it joins (see `JoinTable::probe`).
        Some(StreamingOperator {
            step: Step::Probe(_, spec),
            ..
        }) if keys_stay_wide => spec
            .probe_keys
            .iter()
            .flat_map(collect_columns)
            .all(|column| stays_wide(column.index())),
        _ => false,
    }
}

fn push_through(
    operators: &[StreamingOperator],
    mut batch: RecordBatch,
) -> Result<Option<RecordBatch>> {
    for StreamingOperator {
        node: operator,
        step,
    } in operators
    {
        let started = Instant::now();
        batch = match step {
            Step::KeyFilter {
                table,
                column,
                pass_rate,
            } => {
                if !pass_rate.worth_it() {
                    continue;
                }
                let kept = table.key_filter(batch.column(*column))?;
                pass_rate.record(batch.num_rows(), kept.true_count());
                operator.metrics.record_time(started.elapsed());
                let kept = filter_record_batch(&batch, &kept)
                    .map_err(ExecError::arrow("HashJoin key filter"))?;
                if kept.num_rows() == 0 {
                    return Ok(None);
                }
                // The join counts its output rows, not what its filter lets through.
                batch = kept;
                continue;
            }
            Step::Probe(table, spec) => table.probe(spec, &batch, &operator.schema)?,
            Step::Filter(predicate) => predicate.filter(&batch)?,
            Step::Project(exprs) => {
                let columns = evaluate_all("Projection", exprs, &batch)?;
                let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                RecordBatch::try_new_with_options(Arc::clone(&operator.schema), columns, &options)
                    .map_err(ExecError::arrow("Projection"))?
            }
        };
        operator.metrics.record_time(started.elapsed());
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        operator.metrics.record_output(batch.num_rows());
    }
    Ok(Some(batch))
}

/// `batch` (one input's rows) as rows of the union's `schema`, whose names and types the
/// logical plan set; a column of another type is cast.
fn as_union_rows(batch: RecordBatch, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast(column, field.data_type()).map_err(ExecError::arrow("Union"))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(ExecError::arrow("Union"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_filter_that_keeps_most_rows_turns_itself_off_after_its_trial() {
        let selective = PassRate::default();
        let useless = PassRate::default();
        for _ in 0..4 {
            selective.record(32_768, 300);
            useless.record(32_768, 30_000);
        }
        assert!(selective.worth_it());
        assert!(!useless.worth_it());
        // Judged only after the trial: one batch keeping everything decides nothing.
        let early = PassRate::default();
        early.record(1_000, 1_000);
        assert!(early.worth_it());
    }
}
