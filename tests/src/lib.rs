//! End-to-end tests of Sabot live in `tests/`; this library is empty on purpose.
