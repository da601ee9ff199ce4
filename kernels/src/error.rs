//! Errors of Sabot's kernels.

/// Result alias of the `sabot-kernels` crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

/// What a kernel can refuse.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A column does not have the type or length the kernel was set up for.
    #[error("key column {index}: {message}")]
    KeyColumn { index: usize, message: String },
    /// A table would hold more rows than its 32-bit row ids address.
    #[error("a hash table of {rows} rows is more than the {limit} a table holds")]
    TooManyRows { rows: usize, limit: usize },
    /// A grouped kernel's inputs do not line up.
    #[error("{values} values but {group_ids} group ids")]
    GroupIdCount { values: usize, group_ids: usize },
    /// A group id names no group.
    #[error("group id {id} is outside the {groups} groups")]
    GroupId { id: u32, groups: usize },
    /// Decimal operands whose scales are too far apart to rescale in 64-bit arithmetic.
    #[error("a decimal of scale {from} cannot be rescaled to scale {to} in 64-bit arithmetic")]
    DecimalRescale { from: i8, to: i8 },
    /// The GPU refused or failed an operation.
    #[error("GPU {operation}: {message}")]
    Device {
        operation: &'static str,
        message: String,
    },
    /// Arrow could not build an output array.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
