//! The TPC-H benchmark runner: each query on each engine, one warm-up and N timed runs, medians,
//! totals and the ratio between two engines, as a table or as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Result, SabotError};
use crate::execution::{Engine, RowEstimate};
use crate::session::Sabot;
use crate::tpch::answers::ReferenceAnswer;
use crate::tpch::{QuerySelection, query};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub scale_factor: f64,
    pub queries: QuerySelection,
    /// Timed runs per query and engine, after one warm-up run.
    pub iterations: usize,
    pub engines: Vec<Engine>,
    /// A directory of reference answers (`q<N>.csv`) to check each query's warm-up result
    /// against.
    pub answers: Option<PathBuf>,
    /// Keep each Sabot warm-up run's estimated and actual join and aggregation rows.
    pub report_estimates: bool,
}

/// One query on one engine.
#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    pub query: usize,
    pub engine: String,
    /// Seconds of each timed run, planning included.
    pub runs_s: Vec<f64>,
    pub median_s: f64,
    /// Rows in the query's result.
    pub rows: usize,
    /// Parts of the plan that ran on DataFusion although `engine` was Sabot.
    pub fallbacks: Vec<String>,
    /// With reference answers: "ok", or what differs from the reference.
    pub answer: Option<String>,
    /// With `report_estimates`, on Sabot: the joins' and aggregations' estimated and actual
    /// rows.
    pub estimates: Vec<RowEstimate>,
}

impl QueryTiming {
    /// Whether the result was checked and differs from its reference answer.
    pub fn answer_differs(&self) -> bool {
        self.answer.as_deref().is_some_and(|answer| answer != "ok")
    }
}

/// The results of a benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub benchmark: &'static str,
    pub scale_factor: f64,
    pub iterations: usize,
    pub threads: usize,
    pub engines: Vec<String>,
    pub timings: Vec<QueryTiming>,
    /// Sum of medians per engine, in the order of `engines`.
    pub totals_s: Vec<f64>,
}

/// Runs the benchmark on `sabot`, whose session must have the TPC-H tables registered.
/// `on_timing` is called as each (query, engine) finishes.
pub fn run(
    sabot: &Sabot,
    config: &BenchConfig,
    mut on_timing: impl FnMut(&QueryTiming),
) -> Result<BenchReport> {
    if config.iterations == 0 {
        return Err(SabotError::invalid_argument(
            "iterations must be at least 1",
        ));
    }
    if config.engines.is_empty() {
        return Err(SabotError::invalid_argument("name at least one engine"));
    }
    let mut timings = Vec::new();
    for &number in &config.queries.0 {
        let sql = query(number)?;
        let answer = config
            .answers
            .as_deref()
            .map(|dir| ReferenceAnswer::for_query(dir, number))
            .transpose()?;
        for &engine in &config.engines {
            let timing = time_query(
                sabot,
                number,
                sql,
                engine,
                config.iterations,
                answer.as_ref(),
            )?;
            on_timing(&timing);
            timings.push(timing);
        }
    }
    let totals_s = config
        .engines
        .iter()
        .map(|engine| {
            timings
                .iter()
                .filter(|timing| timing.engine == engine.name())
                .map(|timing| timing.median_s)
                .sum()
        })
        .collect();
    Ok(BenchReport {
        benchmark: "tpch",
        scale_factor: config.scale_factor,
        iterations: config.iterations,
        threads: sabot.settings().threads,
        engines: config
            .engines
            .iter()
            .map(|engine| engine.name().to_string())
            .collect(),
        timings,
        totals_s,
    })
}

/// What the warm-up run of a query found.
struct WarmUp {
    rows: usize,
    fallbacks: Vec<String>,
    answer: Option<String>,
    estimates: Vec<RowEstimate>,
}

/// Times one query on one engine; the warm-up run's result is checked against `answer`.
fn time_query(
    sabot: &Sabot,
    number: usize,
    sql: &str,
    engine: Engine,
    iterations: usize,
    answer: Option<&ReferenceAnswer>,
) -> Result<QueryTiming> {
    let warm_up = || -> Result<WarmUp> {
        let frame = sabot.sql(sql)?.with_engine(engine);
        let schema = frame.schema();
        let executed = frame.execute()?;
        let rows = executed.batches.iter().map(|batch| batch.num_rows()).sum();
        let fallbacks = executed.fallbacks.iter().map(ToString::to_string).collect();
        let checked = answer
            .map(|answer| answer.verdict(&schema, &executed.batches))
            .transpose()?;
        Ok(WarmUp {
            rows,
            fallbacks,
            answer: checked,
            estimates: executed.estimates,
        })
    };
    let timed_run = || -> Result<f64> {
        let started = Instant::now();
        sabot.sql(sql)?.with_engine(engine).execute()?;
        Ok(started.elapsed().as_secs_f64())
    };
    let WarmUp {
        rows,
        fallbacks,
        answer,
        estimates,
    } = warm_up().map_err(|error| in_query(number, engine, error))?;
    let mut runs_s = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        runs_s.push(timed_run().map_err(|error| in_query(number, engine, error))?);
    }
    Ok(QueryTiming {
        query: number,
        engine: engine.name().to_string(),
        median_s: median(&runs_s),
        runs_s,
        rows,
        fallbacks,
        answer,
        estimates,
    })
}

fn in_query(number: usize, engine: Engine, error: SabotError) -> SabotError {
    SabotError::Execution {
        message: format!("TPC-H Q{number} on {engine}: {error}"),
    }
}

/// The median of a non-empty list (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}

impl BenchReport {
    fn median_of(&self, query: usize, engine: &str) -> Option<f64> {
        self.timings
            .iter()
            .find(|timing| timing.query == query && timing.engine == engine)
            .map(|timing| timing.median_s)
    }

    /// Whether any result was checked and differs from its reference answer.
    pub fn any_answer_differs(&self) -> bool {
        self.timings.iter().any(QueryTiming::answer_differs)
    }

    /// The report as a text table: medians per query and engine, the ratio of the first engine
    /// to the second where there are two, whether the answers matched their references (when
    /// checked), and what fell back to DataFusion. Mismatches are listed below the table.
    pub fn to_table(&self) -> String {
        let mut text = format!(
            "TPC-H SF {}: median of {} run(s) after 1 warm-up, seconds; {} thread(s)\n",
            self.scale_factor, self.iterations, self.threads
        );
        let ratio_header =
            (self.engines.len() == 2).then(|| format!("{}/{}", self.engines[0], self.engines[1]));
        let mut header = format!("{:<6}", "query");
        for engine in &self.engines {
            let _ = write!(header, " {engine:>11}");
        }
        if let Some(ratio) = &ratio_header {
            let _ = write!(header, " {ratio:>18}");
        }
        let checked = self.timings.iter().any(|timing| timing.answer.is_some());
        if checked {
            header.push_str("  answer");
        }
        header.push_str("  fallback");
        text.push_str(&header);
        text.push('\n');

        let mut queries: Vec<usize> = self.timings.iter().map(|timing| timing.query).collect();
        queries.dedup();
        for query in queries {
            let mut line = format!("{:<6}", format!("Q{query}"));
            let medians: Vec<Option<f64>> = self
                .engines
                .iter()
                .map(|engine| self.median_of(query, engine))
                .collect();
            for median in &medians {
                let _ = write!(line, " {:>11.3}", median.unwrap_or(f64::NAN));
            }
            if ratio_header.is_some() {
                let ratio = medians[0]
                    .zip(medians[1])
                    .map_or(f64::NAN, |(first, second)| first / second);
                let _ = write!(line, " {ratio:>18.2}");
            }
            if checked {
                let differs = self
                    .timings
                    .iter()
                    .any(|timing| timing.query == query && timing.answer_differs());
                let _ = write!(line, "  {:<6}", if differs { "WRONG" } else { "ok" });
            }
            let fallbacks: Vec<&str> = self
                .timings
                .iter()
                .filter(|timing| timing.query == query)
                .flat_map(|timing| timing.fallbacks.iter().map(String::as_str))
                .collect();
            let _ = write!(
                line,
                "  {}",
                if fallbacks.is_empty() {
                    "-".to_string()
                } else {
                    fallbacks.join("; ")
                }
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }

        let mut total = format!("{:<6}", "total");
        for seconds in &self.totals_s {
            let _ = write!(total, " {seconds:>11.3}");
        }
        if ratio_header.is_some() {
            let _ = write!(total, " {:>18.2}", self.totals_s[0] / self.totals_s[1]);
        }
        text.push_str(&total);
        text.push('\n');
        for timing in self.timings.iter().filter(|timing| timing.answer_differs()) {
            let _ = writeln!(
                text,
                "Q{} on {}: {}",
                timing.query,
                timing.engine,
                timing.answer.as_deref().unwrap_or_default()
            );
        }
        text
    }

    /// Every reported join's and aggregation's estimated and actual rows with its q-error,
    /// then the median and largest q-error of the joins and of the aggregations.
    pub fn estimates_table(&self) -> String {
        let mut text = String::from(
            "row estimates (Sabot's plans): operator, estimated rows, actual rows, q-error\n",
        );
        let mut joins = Vec::new();
        let mut aggregates = Vec::new();
        for timing in self
            .timings
            .iter()
            .filter(|timing| !timing.estimates.is_empty())
        {
            for estimate in &timing.estimates {
                let q_error = estimate.q_error();
                let _ = writeln!(
                    text,
                    "Q{:<3} {:<20} {:>12} {:>12} {:>9}",
                    timing.query,
                    estimate.operator,
                    estimate
                        .estimated_rows
                        .map_or("?".to_string(), |rows| format!("{rows:.0}")),
                    estimate.actual_rows,
                    q_error.map_or("?".to_string(), |q| format!("{q:.2}"))
                );
                if let Some(q) = q_error {
                    if estimate.operator.contains("Join") {
                        joins.push(q);
                    } else {
                        aggregates.push(q);
                    }
                }
            }
        }
        for (name, errors) in [("joins", &joins), ("aggregations", &aggregates)] {
            let largest = errors.iter().copied().fold(f64::NAN, f64::max);
            let _ = writeln!(
                text,
                "{name}: {} estimates, median q-error {:.2}, max {:.2}",
                errors.len(),
                median(errors),
                largest
            );
        }
        text
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|error| SabotError::Execution {
            message: format!("cannot write the report as JSON: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn table_shows_ratio_and_totals_for_two_engines() {
        let timing = |query: usize, engine: &str, median_s: f64| QueryTiming {
            query,
            engine: engine.to_string(),
            runs_s: vec![median_s],
            median_s,
            rows: 1,
            fallbacks: Vec::new(),
            answer: Some(if query == 6 && engine == "sabot" {
                "row 0 differs".to_string()
            } else {
                "ok".to_string()
            }),
            estimates: if engine == "sabot" {
                vec![
                    RowEstimate {
                        operator: "HashJoin Inner".to_string(),
                        estimated_rows: Some(50.0),
                        actual_rows: 200,
                    },
                    RowEstimate {
                        operator: "NestedLoopJoin Inner".to_string(),
                        estimated_rows: Some(10.0),
                        actual_rows: 20,
                    },
                    RowEstimate {
                        operator: "HashAggregate".to_string(),
                        estimated_rows: Some(3.0),
                        actual_rows: 3,
                    },
                ]
            } else {
                Vec::new()
            },
        };
        let report = BenchReport {
            benchmark: "tpch",
            scale_factor: 1.0,
            iterations: 1,
            threads: 2,
            engines: vec!["sabot".into(), "datafusion".into()],
            timings: vec![
                timing(1, "sabot", 1.0),
                timing(1, "datafusion", 2.0),
                timing(6, "sabot", 3.0),
                timing(6, "datafusion", 2.0),
            ],
            totals_s: vec![4.0, 4.0],
        };
        let table = report.to_table();
        let q1 = table.lines().find(|line| line.starts_with("Q1 ")).unwrap();
        assert!(q1.contains("0.50"), "{q1}");
        let q6 = table.lines().find(|line| line.starts_with("Q6 ")).unwrap();
        assert!(q6.contains("1.50"), "{q6}");
        let total = table
            .lines()
            .find(|line| line.starts_with("total"))
            .unwrap();
        assert!(total.contains("1.00"), "{total}");
        assert!(q1.contains(" ok "), "{q1}");
        assert!(q6.contains("WRONG"), "{q6}");
        assert!(table.contains("Q6 on sabot: row 0 differs"), "{table}");
        assert!(report.any_answer_differs());
        let estimates = report.estimates_table();
        assert!(
            estimates.contains("joins: 4 estimates, median q-error 3.00, max 4.00"),
            "{estimates}"
        );
        assert!(
            estimates.contains("aggregations: 2 estimates, median q-error 1.00, max 1.00"),
            "{estimates}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(json["timings"][3]["median_s"], 2.0);
    }
}
