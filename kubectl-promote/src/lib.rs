//! The `kubectl promote` plugin as a library: the binary (`main.rs`) only parses arguments and
//! maps errors to exit codes, so tests drive everything here in-process.

pub mod expr;
pub mod git;
pub mod yaml_edit;
