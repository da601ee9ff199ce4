//! Sabot: analytics on Apache Arrow — batch SQL, a Spark-style DataFrame API and event-time
//! streaming in one engine.
//!
//! ```no_run
//! use sabot::expr::{col, lit, sum};
//! use sabot::Sabot;
//!
//! let sabot = Sabot::local()?;
//! sabot.register_parquet("lineitem", "data/lineitem.parquet")?;
//! sabot.sql("SELECT count(*) FROM lineitem")?.show()?;
//! let totals = sabot
//!     .table("lineitem")?
//!     .filter(col("l_quantity").gt(lit(10)))?
//!     .group_by([col("l_returnflag")])
//!     .agg([sum(col("l_extendedprice")).alias("revenue")])?
//!     .collect()?;
//! # Ok::<(), sabot::SabotError>(())
//! ```

mod analyze;
pub mod cluster_bench;
pub mod dataframe;
pub mod distributed;
pub mod error;
pub mod execution;
pub mod expr;
pub mod format;
pub mod kv_bench;
pub mod nexmark_bench;
pub mod session;
pub mod stats;
pub mod stream;
pub mod stream_table;
pub mod tpch;

pub use arrow;
pub use dataframe::{DataFrame, GroupedData, JoinOn, JoinType};
pub use error::{Result, SabotError};
pub use execution::{Engine, ExecutedQuery, Fallback, RowEstimate};
pub use format::OutputFormat;
pub use sabot_exec::CancelHandle;
pub use session::{CsvOptions, Sabot, SabotBuilder, Settings};
pub use stats::Stats;
pub use stream::{JoinTime, KeyedStream, Stream, StreamJob, Window, WindowedStream};
pub use stream_table::StreamTable;
