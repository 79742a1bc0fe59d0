//! Integration tests: one binary, driving the library, the router and the `kwi` executable against
//! both store backends (SQLite files and fresh PostgreSQL databases) and both caches. A test about
//! the backends runs once per backend, as `<module>::<behaviour>::postgres` and `::sqlite`
//! (`helpers::backend_tests!`), each on its own `TestApp`.
//!
//! PostgreSQL and Redis are required, never skipped: `KWI_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `KWI_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). `.ci/run` starts both.

mod access;
mod accounts;
mod amazon;
mod backup;
mod cache;
mod collect;
mod contract;
mod dashboard;
mod ebay;
mod edge;
mod export;
mod fuzz;
mod helpers;
mod http;
mod import;
mod insights;
mod lease;
mod monthly;
mod oidc;
mod openapi;
mod outage;
mod reforecast;
mod serving;
mod store;
mod timegpt;
mod watch;
