//! The OpenAPI 3 document, generated from the handlers' annotations and the types they
//! exchange, served at `/v1/openapi.json`.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::error::Json;
use super::{events, jobs, meta, objects, stats, submit, triggers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ffarm",
        description = "A self-hosted media transcoding worker farm. With a token configured, \
            every call except /healthz needs `Authorization: Bearer TOKEN`."
    ),
    paths(
        submit::submit, jobs::list, jobs::get, jobs::cancel, jobs::retry, jobs::logs,
        jobs::history, events::job_events, events::all_events, triggers::oss, triggers::s3,
        objects::upload, objects::download, meta::presets, meta::preset, meta::workers,
        meta::healthz, meta::metrics, stats::counts, stats::stats, document
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "submit, list, inspect, cancel and retry jobs"),
        (name = "events", description = "live status and progress (Server-Sent Events)"),
        (name = "triggers", description = "bucket event notifications"),
        (name = "objects", description = "upload inputs, download outputs"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
