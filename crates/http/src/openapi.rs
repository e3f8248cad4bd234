//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' annotations, and the
//! route that serves it (`GET /v1/openapi.json`): the admin API, and the OAuth endpoints and API
//! key verification (`openapi_public`).
//!
//! The document is served without authentication: it describes only public shapes (paths,
//! parameters, request and response bodies, the security schemes), which are also in the
//! checked-in `docs/openapi.json`; it holds no data of the installation, no tenant, key or
//! secret. It is built from code alone, so every node serves the same bytes.
//!
//! This module must never put anything into the document that depends on configuration or
//! stored data, and never add behaviour to a route: it only describes them.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi as Document, PathItem, Ref, Response};
use utoipa::OpenApi;

use crate::admin::openapi::AdminApi;
use crate::openapi_public::{PublicApi, CLIENT_BASIC};

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

/// The name of the bearer scheme for admin and service tokens.
pub const ADMIN_TOKEN: &str = "admin_token";

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "The Portcullis token service: the admin API (under `/admin/v1`), API key \
                       verification, and the OAuth endpoints (token, introspection, revocation, \
                       JWKS, metadata). Admin and service tokens are sent as \
                       `Authorization: Bearer <token>`; OAuth clients authenticate as RFC 6749 \
                       says (HTTP Basic, form parameters, or a signed assertion).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    security(("admin_token" = [])),
)]
struct ApiDoc;

/// Unique operation ids, and the error answers every admin operation may give, added to each
/// operation in one place.
fn finish_operations(path: &str, item: &mut PathItem) {
    let error = |description: &str| -> Response {
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let writes = [
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ];
    let reads = [item.get.as_mut()];
    let is_admin = path.starts_with(crate::admin::PREFIX);
    for (op, write) in writes
        .into_iter()
        .map(|o| (o, true))
        .chain(reads.into_iter().map(|o| (o, false)))
    {
        let Some(op) = op else { continue };
        // Handlers in different modules share names (`list`, `show`); the tag (one per module)
        // makes the operation id unique, as OpenAPI requires.
        if let (Some(tag), Some(id)) = (op.tags.as_ref().and_then(|t| t.first()), &op.operation_id)
        {
            op.operation_id = Some(format!("{tag}.{id}"));
        }
        if !is_admin {
            continue;
        }
        let responses = &mut op.responses.responses;
        let mut add = |status: &str, description: &str| {
            responses
                .entry(status.to_owned())
                .or_insert_with(|| error(description).into());
        };
        add("400", "Malformed request (`invalid_request`)");
        add("401", "Missing or invalid admin token (`invalid_token`)");
        add(
            "403",
            "The token's role may not do this (`insufficient_scope`)",
        );
        add(
            "404",
            "No such object, or not visible to this token (`not_found`)",
        );
        if write {
            add("409", "Conflicts with the current state (`conflict`)");
        }
    }
}

/// The whole document.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.merge(AdminApi::openapi());
    doc.merge(PublicApi::openapi());
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        ADMIN_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An admin token (global admin, tenant admin, auditor, API-key manager) or a \
                     service token, as created by `portcullis bootstrap` or \
                     `POST /admin/v1/tenants/{tenant}/admin-tokens`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        CLIENT_BASIC,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "OAuth client authentication (`client_secret_basic`): the client id and \
                     secret, form-encoded then Base64 (RFC 6749 section 2.3.1).",
                ))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        finish_operations(path, item);
    }
    doc
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        // Serialising a document built from our own types cannot fail: every map key is a string.
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

/// Built once: the document depends on the code alone, and the route needs no credential, so
/// each request must not pay for merging and serialising it.
static SERVED: std::sync::LazyLock<axum::body::Bytes> =
    std::sync::LazyLock::new(|| axum::body::Bytes::from(document_json()));

async fn serve_document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SERVED.clone())
}

/// `GET /v1/openapi.json`, no authentication (see the module docs for why).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(PATH, get(serve_document))
}
