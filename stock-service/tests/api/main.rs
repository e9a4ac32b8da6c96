//! Integration tests: the real service in-process, against the local
//! RabbitMQ (`AMQP_URL`, default `amqp://guest:guest@localhost:5672/%2f`)
//! and a SQLite file in a temporary directory or, for the `…::postgres`
//! variants, a database of their own on the PostgreSQL server
//! `TEST_POSTGRES_URL` names (`scripts/ensure-postgres` starts one;
//! `scripts/test` sets the variable). Each test has its own exchange, queue
//! and database, so tests run in parallel without taking each other's
//! messages, and deletes them when it ends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

mod consuming;
mod health_and_errors;
mod helpers;
mod replicas;
mod retention;
mod retries;
mod startup;
mod store;
mod trace_context;
