//! The HTTP API (axum): routes under `/v1`, `/metrics` and `/healthz`, and the progress page
//! at `/`, with JSON errors, bearer-token auth and body limits. `serve` runs it; tests serve
//! it on port 0.

pub mod auth;
pub mod error;
mod events;
mod exec;
pub mod exec_listener;
mod jobs;
mod keys;
mod meta;
mod objects;
pub mod openapi;
pub mod stats;
mod submit;
mod triggers;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::buckets::{BucketError, Buckets};
use crate::config::Config;
use crate::media::caps::Ffmpeg;
use crate::preset::{PresetError, Presets};
use crate::store::JobStore;
use crate::triggers::Triggers;
use crate::triggers::rule::RuleError;

/// Largest JSON body (submits, notifications).
pub const JSON_LIMIT: usize = 4 << 20;

/// What the handlers share.
pub struct App {
    pub store: Arc<dyn JobStore>,
    pub config: Config,
    pub presets: Arc<Presets>,
    pub buckets: Arc<Buckets>,
    pub triggers: Arc<Triggers>,
    pub http: reqwest::Client,
    /// Cancelled at shutdown: event streams end so the server can stop.
    pub shutdown: CancellationToken,
    /// Queue depth as this process saw it (for the page's chart).
    pub samples: stats::Samples,
    /// This process's own worker (`serve` with workers): exec into its tasks runs here.
    pub local_worker: std::sync::OnceLock<Arc<crate::worker::WorkerCtx>>,
}

pub type AppState = Arc<App>;

/// Why the API's state cannot be built from a configuration.
///
/// Where a variant adds context to an error, the message already holds that error's: it is
/// not also given as `source()`, so a printed chain does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The presets (shipped, or `presets_dir`'s) do not load; the error names the file.
    #[error(transparent)]
    Presets(#[from] PresetError),
    /// `[[triggers]]` rule `index` (from 0) cannot run.
    #[error("configuration: {error}")]
    TriggerRule { index: usize, error: RuleError },
    /// A configured bucket cannot be set up; the error names it.
    #[error(transparent)]
    Buckets(#[from] BucketError),
    /// The HTTP client for deliveries cannot be built.
    #[error(transparent)]
    HttpClient(reqwest::Error),
}

impl App {
    /// The API's state over a store, with presets and buckets from the configuration.
    pub fn new(store: Arc<dyn JobStore>, config: Config) -> Result<AppState, AppError> {
        let presets = Arc::new(Presets::load(config.presets_dir.as_deref(), &Ffmpeg)?);
        check_trigger_rules(&config, &presets)?;
        let buckets = Arc::new(Buckets::new(&config.data_dir, config.buckets.clone())?);
        let triggers = Arc::new(Triggers::new(
            config.triggers.clone(),
            store.clone(),
            buckets.clone(),
            presets.clone(),
            config
                .worker
                .job_timeout_seconds
                .min(submit::MAX_TIMEOUT_SECONDS),
            config.destinations.clone(),
        ));
        let http = reqwest::Client::builder()
            .user_agent(concat!("ffarm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(AppError::HttpClient)?;
        Ok(Arc::new(App {
            store,
            config,
            presets,
            buckets,
            triggers,
            http,
            shutdown: CancellationToken::new(),
            samples: stats::Samples::default(),
            local_worker: std::sync::OnceLock::new(),
        }))
    }
}

/// Every `[[triggers]]` rule can run with these presets.
fn check_trigger_rules(config: &Config, presets: &Presets) -> Result<(), AppError> {
    for (index, rule) in config.triggers.iter().enumerate() {
        rule.check(&|p| presets.get(p).is_ok())
            .and_then(|()| rule.check_chunking(presets))
            .map_err(|error| AppError::TriggerRule { index, error })?;
    }
    Ok(())
}

/// Every route.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/jobs", post(submit::submit).get(jobs::list))
        .route("/v1/jobs/counts", get(stats::counts))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/logs", get(jobs::logs))
        .route("/v1/jobs/{id}/history", get(jobs::history))
        .route("/v1/jobs/{id}/key", get(keys::key))
        .route("/v1/jobs/{id}/events", get(events::job_events))
        .route("/v1/jobs/{id}/exec", get(exec::exec))
        .route("/v1/events", get(events::all_events))
        .route("/v1/triggers/oss", post(triggers::oss))
        .route("/v1/triggers/s3", post(triggers::s3))
        .route(
            "/v1/buckets/{bucket}/objects/{*key}",
            get(objects::download).put(objects::upload),
        )
        .route("/v1/presets", get(meta::presets))
        .route("/v1/presets/{name}", get(meta::preset))
        .route("/v1/workers", get(meta::workers))
        .route("/v1/info", get(meta::info))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(meta::metrics))
        .route("/healthz", get(meta::healthz))
        .route("/", get(web::index))
        .route("/assets/{*path}", get(web::asset))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_token,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

/// A handler bug answers 500 in the API's error shape (and is logged), never a dropped
/// connection.
fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    tracing::error!("handler panicked: {what}");
    axum::response::IntoResponse::into_response(error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (logged)",
    ))
}
