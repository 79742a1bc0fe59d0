//! # kwi-training: fitting, evaluating and publishing forecasters (binary `kwi-train`)
//!
//! Reading order: [`config`] (TOML + flags) → [`data`] (series from files or the store, via the
//! feature layer) → [`pipeline`] (validation split, global members, ensemble, intervals) →
//! [`evaluate`] (M4 metrics, coverage, MSIS) → [`report`] (Markdown, JSON, PNG) → [`cli`] (the
//! subcommands); [`competition`] fits the competition model (`fit-competition`) and runs the
//! insights job (`insights`); [`reforecast`] queues a sharded re-forecast for the workers. Only
//! this crate fits models; the server loads what it publishes.

pub mod cli;
pub mod competition;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod pipeline;
pub mod reforecast;
pub mod report;
