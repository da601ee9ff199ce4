//! A first Sabot program: build a session, query in-memory data with SQL and with the
//! DataFrame API, generate a small TPC-H data set, query its Parquet files and `ANALYZE` one,
//! then read the session's statistics.
//!
//! Run it with `cargo run --release -p sabot --example quickstart`.

use std::sync::Arc;

use sabot::arrow::array::{Float64Array, RecordBatch, StringArray};
use sabot::arrow::datatypes::{DataType, Field, Schema};
use sabot::expr::{col, desc, lit, sum};
use sabot::{Engine, JoinType, Sabot};

fn main() -> sabot::Result<()> {
    let sabot = Sabot::builder().threads(2).memory_limit(2 << 30).build()?;

    // In-memory data.
    let schema = Arc::new(Schema::new(vec![
        Field::new("city", DataType::Utf8, false),
        Field::new("km", DataType::Float64, false),
    ]));
    let trips = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["Lyon", "Nantes", "Lyon", "Lille"])),
            Arc::new(Float64Array::from(vec![12.5, 7.25, 3.0, 21.0])),
        ],
    )?;
    sabot.register_batches("trips", schema, vec![trips])?;

    // SQL.
    sabot
        .sql("SELECT city, sum(km) AS km FROM trips GROUP BY city ORDER BY km DESC")?
        .show()?;

    // The same query with the DataFrame API.
    sabot
        .table("trips")?
        .group_by([col("city")])
        .agg([sum(col("km")).alias("km")])?
        .order_by([desc(col("km"))])?
        .show()?;

    // TPC-H at scale factor 0.01, written as Parquet and queried on both engines.
    let dir = std::env::temp_dir().join("sabot-quickstart-tpch-sf0.01");
    if !sabot::tpch::generate::is_complete(&dir) {
        sabot::tpch::generate::generate(0.01, &dir, 2, &|_| {})?;
    }
    sabot::tpch::register(&sabot, &dir)?;
    let nations = sabot.table("nation")?;
    let regions = sabot
        .table("region")?
        .select([col("r_regionkey").alias("n_regionkey"), col("r_name")])?;
    nations
        .join(regions, "n_regionkey", JoinType::Inner)?
        .filter(col("r_name").eq(lit("EUROPE")))?
        .select([col("n_name"), col("r_name")])?
        .show()?;
    let q6 = sabot::tpch::query(6)?;
    for engine in Engine::ALL {
        let executed = sabot.sql(q6)?.with_engine(engine).execute()?;
        println!(
            "TPC-H Q6 on {engine}: {} row(s), {} rows scanned, fallbacks: {:?}",
            executed
                .batches
                .iter()
                .map(RecordBatch::num_rows)
                .sum::<usize>(),
            executed.rows_scanned,
            executed.fallbacks
        );
    }
    // Full statistics of a table's columns (distinct counts, nulls, bounds, histograms):
    // queries planned from here on estimate from them.
    sabot
        .sql("ANALYZE lineitem (l_shipdate, l_discount, l_quantity)")?
        .show()?;
    println!("{}", sabot.sql(q6)?.explain(false)?);

    println!("{}", sabot.stats());
    sabot.shutdown();
    Ok(())
}
