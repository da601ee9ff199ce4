//! Cuts a physical plan into stages for distributed runs (DESIGN D7). A stage is a subtree
//! that runs as one task per partition; it ends where its output must move between
//! processes (an exchange): hash-partitioned by keys to the tasks of the stage that reads it,
//! gathered into one task, broadcast to every task, or returned as the query's result.
//!
//! Scans are spread over all partitions (each task reads every n-th row group). A grouped
//! aggregation runs in two phases where the estimates give fewer groups than half its input
//! rows: a partial aggregation in each task, its groups' states repartitioned by the keys, and
//! a final aggregation merging them; otherwise its input rows are repartitioned by the group
//! keys. A sort, a limit or an aggregation without groups gathers its input into one task. A join broadcasts its build side when
//! that moves fewer rows than repartitioning both sides (`build rows × (partitions − 1) ≤
//! probe rows`, by the plan's estimates) and the join kind allows it (the build rows must not
//! be emitted on their own); otherwise both sides are hash-partitioned on the join keys.
//! Subtrees that are already in one partition stay together.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::PhysicalExpr;
use sabot_exec::{AggregateSpec, NodeKind, PhysicalNode};

/// How a stage's output reaches the stage that reads it.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// Rows hashed on these keys (over the stage's output): bucket `p` of every task goes to
    /// task `p` of the reader.
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    /// Everything to the reader's first task.
    Gather,
    /// Everything to every task of the reader.
    Broadcast,
    /// The query's result, read by whoever submitted it.
    Result,
}

/// One stage: a subtree run as `tasks` tasks.
#[derive(Debug)]
pub struct Stage {
    pub id: usize,
    pub root: Arc<PhysicalNode>,
    pub tasks: usize,
    /// The stages whose outputs this stage reads, where their roots sit in its subtree.
    pub inputs: Vec<usize>,
    pub output: Exchange,
}

impl Stage {
    /// Output partitions each task writes: one per reader task for a hash exchange, else one.
    pub fn buckets(&self, partitions: usize) -> usize {
        match self.output {
            Exchange::Hash(_) => partitions,
            _ => 1,
        }
    }
}

/// A plan cut into stages, inputs before the stages that read them; the last stage returns
/// the result.
#[derive(Debug)]
pub struct StagePlan {
    pub stages: Vec<Stage>,
    pub partitions: usize,
}

/// Whether a subtree's rows are spread over all partitions or held by one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    Partitioned,
    Single,
}

impl StagePlan {
    /// Cuts the plan rooted at `root` for `partitions` partitions (at least 1).
    pub fn cut(root: &Arc<PhysicalNode>, partitions: usize) -> StagePlan {
        let mut cutter = Cutter {
            partitions: partitions.max(1),
            stages: Vec::new(),
        };
        let (root, spread, inputs) = cutter.visit(root);
        cutter.close(&root, spread, inputs, Exchange::Result);
        StagePlan {
            stages: cutter.stages,
            partitions: partitions.max(1),
        }
    }

    /// The stage returning the result.
    pub fn result_stage(&self) -> &Stage {
        self.stages.last().expect("a plan has at least one stage")
    }

    /// The stage that reads stage `id`'s output (`None` for the result stage).
    pub fn reader_of(&self, id: usize) -> Option<usize> {
        self.stages
            .iter()
            .find(|stage| stage.inputs.contains(&id))
            .map(|stage| stage.id)
    }

    /// The plan of task `task` of stage `stage`: its subtree with each input stage's root
    /// replaced by the batches `input(stage id)` returns, and its scans narrowed to the
    /// task's share of row groups.
    pub fn task_plan(
        &self,
        stage: usize,
        task: usize,
        input: &mut dyn FnMut(usize) -> Vec<RecordBatch>,
    ) -> Arc<PhysicalNode> {
        let stage = &self.stages[stage];
        self.rewrite(&stage.root, stage, task, input)
    }

    fn rewrite(
        &self,
        node: &Arc<PhysicalNode>,
        stage: &Stage,
        task: usize,
        input: &mut dyn FnMut(usize) -> Vec<RecordBatch>,
    ) -> Arc<PhysicalNode> {
        if let Some(read) = self.input_stage_at(stage, node) {
            return Arc::new(PhysicalNode::new(
                NodeKind::Batches {
                    batches: input(read),
                    bounds: Vec::new(),
                },
                Arc::clone(&node.schema),
            ));
        }
        match &node.kind {
            NodeKind::ParquetScan(scan) if stage.tasks > 1 => Arc::new(PhysicalNode::new(
                NodeKind::ParquetScan(Arc::new(scan.partition(task, stage.tasks))),
                Arc::clone(&node.schema),
            )),
            _ => {
                let inputs = node
                    .inputs()
                    .into_iter()
                    .map(|child| self.rewrite(child, stage, task, input))
                    .collect();
                node.with_inputs(inputs)
            }
        }
    }

    /// The input stage of `stage` whose root is `node`.
    fn input_stage_at(&self, stage: &Stage, node: &Arc<PhysicalNode>) -> Option<usize> {
        stage
            .inputs
            .iter()
            .copied()
            .find(|&id| Arc::ptr_eq(&self.stages[id].root, node))
    }

    /// The stages as text, for `EXPLAIN`: each stage's tasks, its output exchange and its
    /// subtree, with the stages it reads shown as one line each.
    pub fn display(&self) -> String {
        let mut text = String::new();
        for stage in &self.stages {
            let output = match &stage.output {
                Exchange::Hash(keys) => {
                    let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
                    format!(
                        "hash-partitioned on [{}] into {} partitions",
                        keys.join(", "),
                        self.partitions
                    )
                }
                Exchange::Gather => "gathered into one task".to_string(),
                Exchange::Broadcast => "broadcast to every task".to_string(),
                Exchange::Result => "the result".to_string(),
            };
            let reader = self
                .reader_of(stage.id)
                .map(|reader| format!(" of stage {reader}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "Stage {} ({} task{}), output: {output}{reader}\n",
                stage.id,
                stage.tasks,
                if stage.tasks == 1 { "" } else { "s" }
            ));
            let tree = stage.root.display_with_cuts(&|node| {
                stage
                    .inputs
                    .iter()
                    .find(|&&id| std::ptr::eq(self.stages[id].root.as_ref(), node))
                    .map(|id| format!("ExchangeRead: stage {id}"))
            });
            for line in tree.lines() {
                text.push_str("  ");
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// A digest of the stages and their plans: processes that planned the same query the
    /// same way get the same fingerprint.
    pub fn fingerprint(&self) -> u64 {
        // FNV-1a: stable across processes and builds, unlike the standard hasher.
        self.display()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            })
    }
}

/// A grouped aggregation as a partial aggregation in each task (over `input`, the
/// distributed form of `original_input`) and a final one after the exchange, when the
/// estimates say the groups are under half the input rows: the partial aggregations then
/// shrink what is shuffled. `None` to shuffle the input rows instead.
fn two_phase(
    node: &Arc<PhysicalNode>,
    original_input: &Arc<PhysicalNode>,
    input: &Arc<PhysicalNode>,
    spec: &AggregateSpec,
) -> Option<(Arc<PhysicalNode>, Arc<PhysicalNode>)> {
    let (groups, rows) = (node.estimated_rows()?, original_input.estimated_rows()?);
    if groups * 2.0 > rows {
        return None;
    }
    let (partial_spec, partial_schema, final_spec) = spec.split(&node.schema).ok()?;
    let partial = Arc::new(PhysicalNode::new(
        NodeKind::Aggregate {
            input: Arc::clone(input),
            spec: Arc::new(partial_spec),
        },
        partial_schema,
    ));
    let finishing = Arc::new(PhysicalNode::new(
        NodeKind::Aggregate {
            input: Arc::clone(&partial),
            spec: Arc::new(final_spec),
        },
        Arc::clone(&node.schema),
    ));
    Some((partial, finishing))
}

struct Cutter {
    partitions: usize,
    stages: Vec<Stage>,
}

impl Cutter {
    /// `node` as it runs distributed (an aggregation may become a partial and a final one),
    /// how its rows are spread, and the stages read inside its still open stage.
    fn visit(&mut self, node: &Arc<PhysicalNode>) -> (Arc<PhysicalNode>, Spread, Vec<usize>) {
        let spread_scan = if self.partitions > 1 {
            Spread::Partitioned
        } else {
            Spread::Single
        };
        match &node.kind {
            NodeKind::ParquetScan(_) => (Arc::clone(node), spread_scan, Vec::new()),
            NodeKind::Batches { .. } | NodeKind::Fallback(_) => {
                (Arc::clone(node), Spread::Single, Vec::new())
            }
            NodeKind::Filter { input, .. } | NodeKind::Projection { input, .. } => {
                let (input, spread, reads) = self.visit(input);
                (node.with_inputs(vec![input]), spread, reads)
            }
            NodeKind::Aggregate { input, spec } => {
                let original_input = input;
                let (input, spread, reads) = self.visit(input);
                if spread == Spread::Single {
                    (node.with_inputs(vec![input]), Spread::Single, reads)
                } else if spec.group_exprs().is_empty() {
                    let read = self.close(&input, spread, reads, Exchange::Gather);
                    (node.with_inputs(vec![input]), Spread::Single, vec![read])
                } else if let Some((partial, finishing)) =
                    two_phase(node, original_input, &input, spec)
                {
                    let keys = (0..spec.group_exprs().len())
                        .map(|index| {
                            Arc::new(Column::new(partial.schema.field(index).name(), index))
                                as Arc<dyn PhysicalExpr>
                        })
                        .collect();
                    let read = self.close(&partial, spread, reads, Exchange::Hash(keys));
                    (finishing, Spread::Partitioned, vec![read])
                } else {
                    let keys = Exchange::Hash(spec.group_exprs().to_vec());
                    let read = self.close(&input, spread, reads, keys);
                    (
                        node.with_inputs(vec![input]),
                        Spread::Partitioned,
                        vec![read],
                    )
                }
            }
            NodeKind::Sort { input, .. } | NodeKind::Limit { input, .. } => {
                let (input, spread, reads) = self.visit(input);
                if spread == Spread::Single {
                    (node.with_inputs(vec![input]), Spread::Single, reads)
                } else {
                    let read = self.close(&input, spread, reads, Exchange::Gather);
                    (node.with_inputs(vec![input]), Spread::Single, vec![read])
                }
            }
            NodeKind::Union { inputs } => {
                let visited: Vec<_> = inputs.iter().map(|input| self.visit(input)).collect();
                let rebuilt = node.with_inputs(
                    visited
                        .iter()
                        .map(|(input, _, _)| Arc::clone(input))
                        .collect(),
                );
                if visited
                    .iter()
                    .all(|(_, spread, _)| *spread == Spread::Single)
                {
                    let reads = visited
                        .into_iter()
                        .flat_map(|(_, _, reads)| reads)
                        .collect();
                    return (rebuilt, Spread::Single, reads);
                }
                let mut reads = Vec::new();
                for (input, spread, input_reads) in visited {
                    if spread == Spread::Single {
                        reads.push(self.close(&input, spread, input_reads, Exchange::Gather));
                    } else {
                        reads.extend(input_reads);
                    }
                }
                (rebuilt, Spread::Partitioned, reads)
            }
            NodeKind::HashJoin { spec, .. } => {
                let [probe, build] = node.inputs()[..] else {
                    unreachable!("a hash join has two inputs")
                };
                let (probe_estimate, build_estimate) =
                    (probe.estimated_rows(), build.estimated_rows());
                let (probe, probe_spread, mut probe_reads) = self.visit(probe);
                let (build, build_spread, build_reads) = self.visit(build);
                let rebuilt = node.with_inputs(vec![Arc::clone(&probe), Arc::clone(&build)]);
                if probe_spread == Spread::Single && build_spread == Spread::Single {
                    probe_reads.extend(build_reads);
                    return (rebuilt, Spread::Single, probe_reads);
                }
                let can_broadcast = !spec.emits_build_side();
                let broadcast = can_broadcast
                    && (spec.probe_keys.is_empty()
                        || self.broadcast_is_cheaper(probe_estimate, build_estimate));
                if broadcast {
                    let exchange = if probe_spread == Spread::Single {
                        Exchange::Gather
                    } else {
                        Exchange::Broadcast
                    };
                    probe_reads.push(self.close(&build, build_spread, build_reads, exchange));
                    (rebuilt, probe_spread, probe_reads)
                } else if spec.probe_keys.is_empty() {
                    // A cross join that must emit unmatched build rows: run it in one task.
                    let probe_read =
                        self.close(&probe, probe_spread, probe_reads, Exchange::Gather);
                    let build_read =
                        self.close(&build, build_spread, build_reads, Exchange::Gather);
                    (rebuilt, Spread::Single, vec![probe_read, build_read])
                } else {
                    let probe_keys = Exchange::Hash(spec.probe_keys.clone());
                    let build_keys = Exchange::Hash(spec.build_keys.clone());
                    let probe_read = self.close(&probe, probe_spread, probe_reads, probe_keys);
                    let build_read = self.close(&build, build_spread, build_reads, build_keys);
                    (rebuilt, Spread::Partitioned, vec![probe_read, build_read])
                }
            }
        }
    }

    /// Whether sending the build side to every task moves fewer rows than hash-partitioning
    /// both sides; unknown sizes repartition.
    fn broadcast_is_cheaper(&self, probe_rows: Option<f64>, build_rows: Option<f64>) -> bool {
        match (probe_rows, build_rows) {
            (Some(probe_rows), Some(build_rows)) => {
                build_rows * (self.partitions - 1) as f64 <= probe_rows
            }
            _ => false,
        }
    }

    /// Ends a stage at `root`, whose output leaves it by `output`; returns its id.
    fn close(
        &mut self,
        root: &Arc<PhysicalNode>,
        spread: Spread,
        inputs: Vec<usize>,
        output: Exchange,
    ) -> usize {
        let id = self.stages.len();
        self.stages.push(Stage {
            id,
            root: Arc::clone(root),
            tasks: match spread {
                Spread::Partitioned => self.partitions,
                Spread::Single => 1,
            },
            inputs,
            output,
        });
        id
    }
}
