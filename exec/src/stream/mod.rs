//! Event-time streaming (DESIGN.md D5): a [`StreamSource`] feeds batches through a chain of
//! [`StreamOperator`]s into a [`StreamSink`], driven by a [`StreamPipeline`]. Event time flows as
//! watermarks, made per source partition and combined as their minimum (idle partitions
//! excluded). Windows (tumbling, hop, session) aggregate keyed rows and emit each window once
//! the watermark passes its end; their state is dropped then, so state stays bounded on an
//! endless input.

mod accumulator;
mod checkpoint;
mod deadline_aggregate;
mod file_sink;
mod file_source;
mod group_index;
mod lookup_join;
mod max_rows;
mod nexmark;
mod operator;
mod pipeline;
mod running_aggregate;
mod session_window;
mod sink;
mod snapshot;
mod source;
mod stateless;
mod stream_join;
mod time;
mod watermark;
mod window_aggregate;

pub use accumulator::{AggregateCall, AggregateKind};
pub use checkpoint::CheckpointConfig;
pub use deadline_aggregate::DeadlineAggregate;
pub use file_sink::{FileFormat, FileSink};
pub use file_source::{FileSource, SourceFormat};
pub use lookup_join::LookupJoin;
pub use max_rows::{MaxRowsWindow, WindowMaxRows};
pub use nexmark::{NexmarkConfig, NexmarkGenerator, NexmarkTable};
pub use operator::{StreamEvent, StreamOperator};
pub use pipeline::{PipelineInput, PipelineStats, StreamPipeline};
pub use running_aggregate::RunningAggregate;
pub use session_window::SessionWindowAggregate;
pub use sink::{CollectSink, CountSink, StreamSink};
pub use source::{ChannelSender, ChannelSource, NexmarkSource, SourcePoll, StreamSource};
pub use stateless::{FilterOperator, MapOperator, ProjectOperator};
pub use stream_join::{BinaryStreamOperator, JoinSide, StreamJoin, StreamJoinKind};
pub use time::{WINDOW_END, WINDOW_START, duration_in_units};
pub use watermark::{WatermarkSpec, WatermarkTracker};
pub use window_aggregate::{WindowAggregate, WindowSpec};
