//! ffarm: a self-hosted media transcoding worker farm on FFmpeg's libraries.

pub mod buckets;
pub mod cli;
pub mod config;
pub mod destinations;
pub mod job;
pub mod media;
pub mod preset;
pub mod store;
pub mod worker;
