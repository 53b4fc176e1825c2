//! ffarm: a self-hosted media transcoding worker farm on FFmpeg's libraries.

pub mod cli;
pub mod media;
pub mod preset;
