//! ffarm's integration tests: one binary, one module per area (see `helpers` for fixtures).

// A failing unwrap is a failing test, which is what a test wants.
#![allow(clippy::unwrap_used)]

mod api_chunking;
mod api_events;
mod api_fuzz;
mod api_harness;
mod api_jobs;
mod api_listing;
mod api_objects;
mod api_seed;
mod api_triggers;
mod cli_client;
mod cli_parts;
mod config_files;
mod exec;
mod exec_harness;
mod fuzz_media;
mod fuzz_mutate;
mod fuzz_run;
mod helpers;

mod media_bad_input;
mod media_cli;
mod media_hls;
mod media_pictures;
mod media_presets;
mod media_probe;
mod media_split;
mod media_stop;
mod parts_seed;
mod preset_files;
mod sandbox;
mod serve_e2e;
mod store_atomicity;
mod store_conformance;
mod store_deliveries;
mod store_durability;
mod store_frozen;
mod store_harness;
mod store_instances;
mod store_listing;
mod store_outputs;
mod store_pages;
mod store_parts;
mod store_parts_farm;
mod store_statistics;
mod store_unreadable;
mod store_upgrade;
mod tidy;
mod tidy_layers;
mod trigger_payloads;
mod trigger_watch;
mod web_page;
mod web_parts;
mod worker_deliveries;
mod worker_drain;
mod worker_faults;
mod worker_harness;
mod worker_jobs;
mod worker_outputs;
mod worker_registry;
mod worker_s3;
mod worker_split;
mod worker_uploads;
mod worker_wakeups;
