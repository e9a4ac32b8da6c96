//! Integration tests: the real service in-process, against the local
//! RabbitMQ (`AMQP_URL`, default `amqp://guest:guest@localhost:5672/%2f`) and
//! a SQLite file in a temporary directory. Each test has its own exchange,
//! queue and database, so tests run in parallel without taking each other's
//! messages, and deletes them when it ends.

mod consuming;
mod health_and_errors;
mod helpers;
mod startup;
mod trace_context;
