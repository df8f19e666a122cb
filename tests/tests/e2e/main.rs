//! End-to-end tests: the real binaries against real Git servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod backend;
mod binaries;
mod cluster;
mod demo;
mod discover;
mod faults;
mod fidelity;
mod fuzz;
mod layout;
mod local;
mod quickstart;
mod readme;
mod real;
mod sandbox;
mod ship;
mod webhook;
