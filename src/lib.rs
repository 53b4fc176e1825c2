//! ffarm: a self-hosted media transcoding worker farm on FFmpeg's libraries.

pub mod api;
pub mod buckets;
pub mod cli;
pub mod config;
pub mod destinations;
pub mod engine;
pub mod exec;
pub mod job;
pub mod media;
pub mod metrics;
pub mod preset;
pub mod process;
pub mod progress;
pub mod sandbox;
pub mod serve;
pub mod stop;
pub mod store;
pub mod triggers;
pub mod worker;
