//! CORS as oslo.middleware's `CORS` filter does it for Placement (on when
//! `[cors] allowed_origin` is set), outside authentication: a preflight
//! `OPTIONS` always answers 200 (the application's error replaced by an
//! empty 200), with the preflight headers when the origin, the requested
//! method and every requested header are allowed; any other request from
//! an allowed origin gets `Access-Control-Allow-Origin` and friends.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;

/// oslo.middleware's "simple headers", always allowed in a preflight.
const SIMPLE_HEADERS: [&str; 8] = [
    "Accept",
    "Accept-Language",
    "Content-Type",
    "Cache-Control",
    "Content-Language",
    "Expires",
    "Last-Modified",
    "Pragma",
];

/// The `[cors]` options (oslo.middleware's names and defaults).
#[derive(Debug, Clone)]
pub struct Cors {
    /// `allowed_origin`: origins allowed (`*` for any); empty: CORS off.
    pub allowed_origin: Vec<String>,
    /// `allow_credentials` (default true).
    pub allow_credentials: bool,
    /// `expose_headers` (default none).
    pub expose_headers: Vec<String>,
    /// `max_age` in seconds (default 3600; 0: not sent).
    pub max_age: u64,
    /// `allow_methods` (default OPTIONS, GET, HEAD, POST, PUT, DELETE,
    /// TRACE, PATCH).
    pub allow_methods: Vec<String>,
    /// `allow_headers` (default none beyond the simple headers).
    pub allow_headers: Vec<String>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            allowed_origin: Vec::new(),
            allow_credentials: true,
            expose_headers: Vec::new(),
            max_age: 3600,
            allow_methods: [
                "OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH",
            ]
            .map(str::to_owned)
            .to_vec(),
            allow_headers: Vec::new(),
        }
    }
}

impl Cors {
    /// `router` behind this CORS filter (unchanged when no origin is
    /// allowed, as Placement leaves the filter out).
    pub fn wrap(self, router: Router) -> Router {
        if self.allowed_origin.is_empty() {
            return router;
        }
        router.layer(middleware::from_fn_with_state(Arc::new(self), filter))
    }

    /// The origin to answer with, when `origin` is allowed.
    fn origin<'a>(&self, origin: &'a str) -> Option<&'a str> {
        if self.allowed_origin.iter().any(|o| o == origin) {
            Some(origin)
        } else if self.allowed_origin.iter().any(|o| o == "*") {
            Some("*")
        } else {
            None
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

async fn filter(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let mut resp = next.run(req).await;
    if resp.headers().contains_key("access-control-allow-origin") {
        return resp;
    }
    if method == Method::OPTIONS {
        if !resp.status().is_success() {
            resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::OK;
        }
        preflight(&cors, &headers, resp.headers_mut());
        return resp;
    }
    let Some(origin) = header(&headers, "origin").and_then(|o| cors.origin(o)) else {
        return resp;
    };
    let h = resp.headers_mut();
    let vary = match header(h, "vary") {
        Some(v) => format!("{v},Origin"),
        None => "Origin".to_owned(),
    };
    set(h, "vary", &vary);
    set(h, "access-control-allow-origin", origin);
    if cors.allow_credentials {
        set(h, "access-control-allow-credentials", "true");
    }
    if !cors.expose_headers.is_empty() {
        set(
            h,
            "access-control-expose-headers",
            &cors.expose_headers.join(","),
        );
    }
    resp
}

/// Section 6.2 of the CORS spec, as oslo.middleware applies it.
fn preflight(cors: &Cors, req: &HeaderMap, h: &mut HeaderMap) {
    let Some(origin) = header(req, "origin").and_then(|o| cors.origin(o)) else {
        return;
    };
    let Some(method) = header(req, "access-control-request-method") else {
        return;
    };
    let requested: Vec<&str> = header(req, "access-control-request-headers")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !cors.allow_methods.iter().any(|m| m == method) {
        return;
    }
    let permitted = |x: &str| {
        cors.allow_headers
            .iter()
            .map(String::as_str)
            .chain(SIMPLE_HEADERS)
            .any(|p| p.eq_ignore_ascii_case(x))
    };
    if !requested.iter().all(|x| permitted(x)) {
        return;
    }
    set(h, "vary", "Origin");
    set(h, "access-control-allow-origin", origin);
    if cors.allow_credentials {
        set(h, "access-control-allow-credentials", "true");
    }
    if cors.max_age > 0 {
        set(h, "access-control-max-age", &cors.max_age.to_string());
    }
    set(h, "access-control-allow-methods", method);
    if !requested.is_empty() {
        set(h, "access-control-allow-headers", &requested.join(","));
    }
}
