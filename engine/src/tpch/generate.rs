//! Writes the eight TPC-H tables at a scale factor as Parquet files, one per table
//! (`<dir>/<table>.parquet`), with `tpchgen-arrow`. Parts of a table are generated on several
//! threads while one writer encodes them in order, so the files are the same for any thread count.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow,
    RecordBatchIterator, RegionArrow, SupplierArrow,
};

use crate::error::{Result, SabotError};
use crate::tpch::Table;

/// Smallest and largest scale factors `generate` accepts.
pub const SCALE_FACTOR_RANGE: (f64, f64) = (0.01, 100.0);
/// Rows generated per part: the unit of parallel work, bounding memory per thread.
const ROWS_PER_PART: u64 = 500_000;
/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 65_536;
/// Rows per Parquet row group: the unit of parallel scanning.
const ROW_GROUP_ROWS: usize = 262_144;
/// Name of the marker file written last, once every table is complete.
const COMPLETE_MARKER: &str = "_SUCCESS";

/// Approximate rows of `table` at scale factor `sf` (exact for all but lineitem).
pub fn estimated_rows(table: Table, sf: f64) -> u64 {
    let per_sf: f64 = match table {
        Table::Customer => 150_000.0,
        Table::Lineitem => 6_001_215.0,
        Table::Orders => 1_500_000.0,
        Table::Part => 200_000.0,
        Table::Partsupp => 800_000.0,
        Table::Supplier => 10_000.0,
        Table::Nation => return 25,
        Table::Region => return 5,
    };
    (per_sf * sf) as u64
}

/// Checks that `sf` is a scale factor `generate` accepts.
pub fn validate_scale_factor(sf: f64) -> Result<()> {
    let (lowest, highest) = SCALE_FACTOR_RANGE;
    if sf.is_finite() && (lowest..=highest).contains(&sf) {
        Ok(())
    } else {
        Err(SabotError::invalid_argument(format!(
            "scale factor {sf} is outside {lowest} to {highest}"
        )))
    }
}

/// Whether `dir` holds a complete data set written by [`generate`].
pub fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file()
        && Table::ALL.iter().all(|table| table.path_in(dir).is_file())
}

/// Generates all eight tables at scale factor `sf` into `dir` with `threads` generator threads.
/// `progress` is called with the number of rows just written.
pub fn generate(
    sf: f64,
    dir: &Path,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    validate_scale_factor(sf)?;
    std::fs::create_dir_all(dir).map_err(|error| SabotError::io(dir, error))?;
    let marker = dir.join(COMPLETE_MARKER);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(|error| SabotError::io(&marker, error))?;
    }
    for table in Table::ALL {
        generate_table(table, sf, dir, threads.max(1), progress)?;
    }
    File::create(&marker).map_err(|error| SabotError::io(&marker, error))?;
    Ok(())
}

fn generate_table(
    table: Table,
    sf: f64,
    dir: &Path,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let fail = |message: String| SabotError::TpchGeneration {
        table: table.name().to_string(),
        message,
    };
    let parts = estimated_rows(table, sf).div_ceil(ROWS_PER_PART).max(1) as i32;
    let schema = part_batches(table, sf, 1, parts).schema().clone();
    let final_path = table.path_in(dir);
    let partial_path: PathBuf = dir.join(format!(".{}.parquet.partial", table.name()));
    let file = File::create(&partial_path).map_err(|error| SabotError::io(&partial_path, error))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties))
        .map_err(|error| fail(error.to_string()))?;

    std::thread::scope(|scope| -> Result<()> {
        let (sender, receiver) = sync_channel::<Vec<RecordBatch>>(threads);
        let writing = scope.spawn(move || -> Result<()> {
            for part in receiver {
                for batch in part {
                    writer
                        .write(&batch)
                        .map_err(|error| fail(error.to_string()))?;
                    progress(batch.num_rows() as u64);
                }
            }
            writer.close().map_err(|error| fail(error.to_string()))?;
            Ok(())
        });
        let all_parts: Vec<i32> = (1..=parts).collect();
        for wave in all_parts.chunks(threads) {
            let generated: Vec<_> = wave
                .iter()
                .map(|&part| {
                    scope.spawn(move || part_batches(table, sf, part, parts).collect::<Vec<_>>())
                })
                .collect();
            for handle in generated {
                let batches = handle
                    .join()
                    .map_err(|_| fail("a generator thread panicked".to_string()))?;
                if sender.send(batches).is_err() {
                    break;
                }
            }
        }
        drop(sender);
        writing
            .join()
            .map_err(|_| fail("the Parquet writer thread panicked".to_string()))?
    })?;

    std::fs::rename(&partial_path, &final_path).map_err(|error| SabotError::io(&final_path, error))
}

/// The batches of one part (1-based) of `table`.
fn part_batches(table: Table, sf: f64, part: i32, parts: i32) -> Box<dyn RecordBatchIterator> {
    match table {
        Table::Customer => Box::new(
            CustomerArrow::new(CustomerGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Lineitem => Box::new(
            LineItemArrow::new(LineItemGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Nation => Box::new(
            NationArrow::new(NationGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Orders => Box::new(
            OrderArrow::new(OrderGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Part => Box::new(
            PartArrow::new(PartGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Partsupp => Box::new(
            PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Region => Box::new(
            RegionArrow::new(RegionGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
        Table::Supplier => Box::new(
            SupplierArrow::new(SupplierGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS),
        ),
    }
}
