//! Streaming operators end to end: windows over out-of-order and late input checked against
//! hand-computed results, bounded state on long inputs, and the Nexmark generator checked
//! against the `nexmark` crate's model.

mod joins;
mod nexmark_model;
mod recovery;
mod windows;
