//! ffarm: a self-hosted media transcoding worker farm on FFmpeg's libraries.

pub mod cli;
pub mod job;
pub mod media;
pub mod preset;
pub mod store;
