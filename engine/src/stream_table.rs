//! Stream tables: named sources that SQL queries read. A table is registered with a factory
//! (each query run opens its own source) and optionally the column its watermarks come from;
//! DataFusion sees an empty table of the same schema, so queries over it parse and plan, and
//! the streaming planner runs them as streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sabot_exec::stream::StreamSource;

/// Opens a new source for one run of a query.
pub type SourceFactory = Arc<dyn Fn() -> sabot_exec::Result<Box<dyn StreamSource>> + Send + Sync>;

/// A stream that SQL can read under a name.
#[derive(Clone)]
pub struct StreamTable {
    pub(crate) factory: SourceFactory,
    pub(crate) watermark: Option<(String, Duration)>,
}

impl StreamTable {
    /// A table whose rows come from the sources `factory` opens.
    pub fn new<S: StreamSource + 'static>(
        factory: impl Fn() -> sabot_exec::Result<S> + Send + Sync + 'static,
    ) -> StreamTable {
        StreamTable {
            factory: Arc::new(move || {
                factory().map(|source| Box::new(source) as Box<dyn StreamSource>)
            }),
            watermark: None,
        }
    }

    /// Event time comes from `column`; watermarks trail the newest time by
    /// `max_out_of_orderness`.
    pub fn with_watermark(mut self, column: &str, max_out_of_orderness: Duration) -> StreamTable {
        self.watermark = Some((column.to_string(), max_out_of_orderness));
        self
    }
}

/// The stream tables of a session.
#[derive(Default)]
pub(crate) struct StreamTables(Mutex<HashMap<String, StreamTable>>);

impl StreamTables {
    pub(crate) fn insert(&self, name: &str, table: StreamTable) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), table);
    }

    pub(crate) fn get(&self, name: &str) -> Option<StreamTable> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name)
    }
}
