//! The test kit: the infrastructure the end-to-end tests, the benchmark and the
//! `checkout` command need to run the pipeline and see what it did, written once.
//!
//! Everything here is real: a real OTLP endpoint, real RabbitMQ nodes started by the
//! repository's scripts, real PostgreSQL databases and real child processes. Each
//! piece belongs to whoever created it (its own names, its own ports) and is removed
//! when dropped, however the test or benchmark ends.
//!
//! # Layout
//!
//! - [`receiver`]: the in-process OTLP receiver (traces, metrics, logs), which the
//!   tests assert on, the benchmark checks traces with, and `checkout traces`, `top`
//!   and `load --verify-traces` are built on.
//! - [`verify`]: what a complete checkout trace is, and checking traces against a
//!   receiver's store.
//! - [`rabbitmq`]: private RabbitMQ nodes and clusters (`scripts/rabbitmq-cluster`),
//!   never the machine's default node.
//! - [`postgres`]: a PostgreSQL database of one's own, dropped afterwards.
//! - [`process`]: a service binary as a child process: started with its
//!   environment, its bound address read from its start-up log, stopped or killed.
//! - [`ports`]: loopback ports free a moment ago.
//! - [`poll`]: the one "wait until" of the tests.
//!
//! # Why one crate
//!
//! The tests (`e2e`), the benchmark (`bench`) and the command (`checkout-cli`) need
//! the same pieces; in one crate each has one behaviour to fix and to trust. It
//! depends on no service crate, so the `checkout` command can use the
//! receiver without compiling the services.

pub mod poll;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod rabbitmq;
pub mod receiver;
pub mod verify;
