//! The OpenAPI 3 document, generated from the handlers' annotations and the types they
//! exchange, served at `/v1/openapi.json`.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

use super::error::Json;
use super::{events, exec, jobs, keys, meta, objects, stats, submit, triggers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ffarm",
        description = "A self-hosted media transcoding worker farm. With a token configured, \
            every call except /healthz needs `Authorization: Bearer TOKEN`."
    ),
    paths(
        submit::submit, jobs::list, jobs::get, jobs::cancel, jobs::retry, jobs::logs,
        jobs::history, keys::key, events::job_events, events::all_events, triggers::oss, triggers::s3,
        objects::upload, objects::download, meta::presets, meta::preset, meta::workers,
        meta::info, meta::healthz, meta::metrics, stats::counts, stats::stats, exec::exec, document
    ),
    // Named only in query parameters, which utoipa does not collect schemas from.
    components(schemas(crate::store::TimeField)),
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
        // With a token configured, a call without it (or with another) is answered 401.
        let unauthorized = ResponseBuilder::new()
            .description("a token is configured and the request has none, or another")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in doc.paths.paths.iter_mut() {
            if super::auth::OPEN_PATHS.contains(&path.as_str()) {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                op.responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| unauthorized.clone().into());
            }
        }
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
