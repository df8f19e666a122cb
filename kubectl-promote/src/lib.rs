//! The `kubectl promote` plugin as a library: the binary (`main.rs`) only parses arguments and
//! maps errors to exit codes, so tests drive everything here in-process.
//!
//! One promotion, in two hops: `commands::promote` picks a source and a recorder, and
//! `promotion::run` is the loop (plan, begin, steps through `runner` and `steps/`, record).
//!
//! | module | owns |
//! |---|---|
//! | `cli` | arguments: one struct per command |
//! | `commands/` | one file per command; `promote.rs` starts promotions and resumes |
//! | `promotion/` | the one promotion loop: plan, source, lease and claim, records, summary |
//! | `runner` | running steps: config checks, vars, `if`, phases |
//! | `steps/` | one file per promotion step, and the step registry |
//! | `expr` | `${{ }}` expressions |
//! | `git/` | the Git engine (mirror cache, object-database edits, push with retry) |
//! | `credentials` | Git credentials from URLs, project Secrets and the environment |
//! | `yaml_edit`, `json_edit` | format-preserving YAML edits; byte-faithful JSON edits (sjson's) |
//! | `manifests` | Kargo and Argo CD objects from `--local DIR` |
//! | `kube` | the Kubernetes API (the `Api` trait; a blocking facade over kube-rs) |
//! | `interrupt` | Ctrl-C and abort requests |
//! | `output` | progress and results |
//! | `jsonpath` | kubectl's `-o jsonpath=` templates |
//! | `error` | the error type, hints, exit codes |

pub mod cli;
pub mod commands;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod expr;
pub mod git;
pub mod interrupt;
pub mod json_edit;
pub mod jsonpath;
pub mod kube;
pub mod manifests;
pub mod output;
pub mod promotion;
pub mod runner;
pub mod steps;
pub mod web;
pub mod yaml_edit;
