//! The compute API's cross-cutting HTTP concerns, one tower layer each,
//! outermost first:
//!
//! 1. [`render_faults`]: an error response that is not one of our faults
//!    (tower-http's 413, axum's rejections, a 405) becomes nova's fault
//!    body; a 413 also says `Connection: close`.
//! 2. [`request_id`]: a new `req-<uuid>` per request (nova makes its own
//!    even when the client sends one, which is why this is not
//!    tower-http's `SetRequestId`, which keeps the client's), in the
//!    request's extensions, its tracing span, and the response's
//!    `x-openstack-request-id` / `x-compute-request-id`.
//! 3. [`microversion`]: negotiation (400 malformed, 406 outside
//!    2.1 … [`crate::microversion::MAX`]), the [`ApiVersion`] extension,
//!    and the version headers (with `Vary`) on every response.
//! 4. tower-http's `RequestBodyLimitLayer`: nova's 112 KiB
//!    (`[oslo_middleware] max_request_body_size`).
//! 5. [`authenticate`] (the `/v2.1` routes but the version document): the
//!    token becomes the [`Ctx`] extension, or 401.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;

use crate::auth::{Identity, Unauthenticated};
use crate::fault::{Fault, Rendered};
use crate::microversion::{self, ApiVersion};
use crate::{ApiState, MAX_BODY};

/// The request id of a request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// `router` with the request id, microversion, body limit and fault
/// layers.
pub(crate) fn frame(router: Router) -> Router {
    router
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(middleware::from_fn(microversion))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::map_response(render_faults))
}

/// Nova's fault body for error responses made below us without one.
pub(crate) async fn render_faults(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp.extensions().get::<Rendered>().is_some()
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "Request is too large.".to_owned()
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("Error").to_owned()
        } else {
            text
        }
    };
    let mut out = Fault::new(status, message).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k, v.clone());
        }
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body was not read to its end, so the connection cannot carry
        // another request: the client must not reuse it.
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

/// The identity routes' body limit (nova's, [`MAX_BODY`]) with its 413 in
/// nova's fault format; their other errors keep Keystone's format.
pub(crate) fn identity_frame(router: Router) -> Router {
    router
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(middleware::map_response(|resp: Response| async move {
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
                render_faults(resp).await
            } else {
                resp
            }
        }))
}

/// A new request id, in the extensions, the span and the response.
pub(crate) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    let span = tracing::info_span!(
        "api",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(x) = HeaderValue::from_str(&id) {
        let h = resp.headers_mut();
        h.insert("x-openstack-request-id", x.clone());
        h.insert("x-compute-request-id", x);
    }
    resp
}

/// Microversion negotiation and its response headers.
pub(crate) async fn microversion(mut req: Request, next: Next) -> Response {
    let (version, mut resp) = match microversion::negotiate(req.headers()) {
        microversion::Negotiated::Ok(v) => {
            req.extensions_mut().insert(v);
            (v, next.run(req).await)
        }
        microversion::Negotiated::Malformed(v) => (
            microversion::MIN,
            Fault::bad_request(format!(
                "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
            ))
            .into_response(),
        ),
        microversion::Negotiated::Unsupported(v) => (
            microversion::MIN,
            Fault::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {v} is not supported by the API. Minimum is {} and maximum is {}.",
                    microversion::MIN,
                    microversion::MAX
                ),
            )
            .into_response(),
        ),
    };
    version_headers(&mut resp, version);
    resp
}

fn version_headers(resp: &mut Response, version: ApiVersion) {
    let h = resp.headers_mut();
    let v = version.to_string();
    if let Ok(x) = HeaderValue::from_str(&format!("compute {v}")) {
        h.insert("openstack-api-version", x);
    }
    if let Ok(x) = HeaderValue::from_str(&v) {
        h.insert("x-openstack-nova-api-version", x);
    }
    h.insert(
        "vary",
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
}

/// The caller of a request from its token, or 401 (with a real
/// Keystone's `WWW-Authenticate`), or 503 when Keystone cannot be asked.
pub(crate) async fn authenticate(
    State(st): State<Arc<ApiState>>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    match st.identity.authenticate_async(req.headers(), &rid).await {
        Ok(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Err(Unauthenticated::Invalid) => {
            let mut r = Fault::unauthorized("The request you have made requires authentication.")
                .into_response();
            if let Some(v) = st
                .identity
                .www_authenticate()
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        Err(Unauthenticated::Unavailable(_)) => Fault::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Failed to fetch token data from identity server",
        )
        .into_response(),
    }
}

/// `router` whose callers are checked by a real Keystone first (when
/// `[keystone_authtoken]` names one): its own synchronous check (the image
/// API's, Placement's) then finds the answer in the token cache.
pub(crate) fn with_keystone(router: Router, identity: Identity) -> Router {
    if identity.keystone.is_none() {
        return router;
    }
    router.layer(middleware::from_fn(
        move |req: Request<Body>, next: Next| {
            let identity = identity.clone();
            async move {
                // Failures are answered by the router's own check.
                let _ = identity.authenticate_async(req.headers(), "").await;
                next.run(req).await
            }
        },
    ))
}
