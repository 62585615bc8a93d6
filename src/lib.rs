//! Library side of the `tributary` package: pieces the binary and the end-to-end tests share.
//! The binary (`src/main.rs`) is the only place that composes the workspace crates.

pub mod workload;
