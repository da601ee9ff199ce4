//! Decimals of at most 18 digits stored as 64-bit integers are read as `Decimal64` where a filter
//! or a join follows the scan, and widened only for the rows kept: every answer is DataFusion's,
//! nulls, negative values, decimal join keys and every join kind included.

use std::path::Path;
use std::sync::Arc;

use sabot::arrow::array::{ArrayRef, Decimal128Array, Int64Array, StringArray};
use sabot::arrow::datatypes::{Field, Schema};
use sabot::arrow::record_batch::RecordBatch;
use sabot::{Engine, Sabot};

use crate::facts_and_dims::rows_on;

const FACT_ROWS: i64 = 120_000;
const DIM_ROWS: i64 = 1_000;

fn decimals(values: impl Iterator<Item = Option<i128>>, precision: u8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter(values)
            .with_precision_and_scale(precision, 2)
            .unwrap(),
    )
}

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, column)| Field::new(*name, column.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns.into_iter().map(|(_, column)| column).collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn filters_and_joins_over_narrow_decimals_give_datafusions_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (facts, dims) = (
        dir.path().join("facts.parquet"),
        dir.path().join("dims.parquet"),
    );
    let ids = 0..FACT_ROWS;
    write(
        &facts,
        vec![
            ("id", Arc::new(Int64Array::from_iter_values(ids.clone()))),
            (
                "price",
                decimals(
                    ids.clone().map(|id| {
                        (id % 13 != 0).then_some((id * 7919 % 1_000_000 - 300_000) as i128)
                    }),
                    15,
                ),
            ),
            (
                "disc",
                decimals(ids.clone().map(|id| Some((id % 11) as i128)), 15),
            ),
            (
                "dkey",
                decimals(
                    ids.clone()
                        .map(|id| Some((id % (2 * DIM_ROWS)) as i128 * 25)),
                    12,
                ),
            ),
            (
                "tag",
                Arc::new(StringArray::from_iter_values(
                    ids.map(|id| ["a", "b", "c"][(id % 3) as usize]),
                )),
            ),
        ],
    );
    let dim_ids = 0..DIM_ROWS;
    write(
        &dims,
        vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(
                    dim_ids.clone().map(|id| id * 3),
                )),
            ),
            (
                "dkey",
                decimals(dim_ids.clone().map(|id| Some(id as i128 * 25)), 12),
            ),
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    dim_ids.map(|id| format!("d{id}")),
                )),
            ),
        ],
    );
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("facts", &facts).unwrap();
    sabot.register_parquet("dims", &dims).unwrap();
    let queries = [
        // A filter on a decimal and on a string: the decimal is widened to be compared.
        "SELECT id, price, disc FROM facts WHERE disc > 0.05 AND tag = 'a'",
        // A filter of no cheap conjunct: every row widened, then filtered.
        "SELECT tag, sum(price * (1 - disc)), count(price) FROM facts WHERE id % 7 = 0 GROUP BY tag",
        // A filter on an integer keeping few rows, decimals summed after.
        "SELECT sum(price), min(disc), max(dkey) FROM facts WHERE id < 5000",
        // Joins probing with the fact table, its decimals in the joined rows.
        "SELECT f.id, f.price, d.name FROM facts f JOIN dims d ON f.id = d.id",
        "SELECT f.id, f.price, d.name FROM facts f LEFT JOIN dims d ON f.id = d.id WHERE f.id % 5 = 0",
        "SELECT id, price, dkey FROM facts WHERE id IN (SELECT id FROM dims)",
        "SELECT count(*), sum(price) FROM facts f WHERE NOT EXISTS (SELECT 1 FROM dims d WHERE d.id = f.id)",
        // A join on a decimal key: that column stays wide.
        "SELECT f.id, f.disc, d.name FROM facts f JOIN dims d ON f.dkey = d.dkey WHERE f.price > 100",
    ];
    for query in queries {
        let on_sabot = rows_on(&sabot, query, Engine::Sabot);
        assert!(!on_sabot.is_empty(), "{query}: no rows");
        assert_eq!(
            on_sabot,
            rows_on(&sabot, query, Engine::DataFusion),
            "{query}"
        );
    }
}
