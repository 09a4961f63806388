//! Nova's fault bodies: `{"<faultName>": {"code": N, "message": "…"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered with Nova's fault body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// HTTP status.
    pub status: StatusCode,
    /// What to tell the user (and what to change).
    pub message: String,
}

/// Handler results.
pub type ApiResult<T> = Result<T, Fault>;

impl Fault {
    /// A fault with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Fault {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    /// 401.
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, m)
    }
    /// 403.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    /// 409.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    /// 500.
    pub fn internal(m: impl std::fmt::Display) -> Self {
        tracing::error!(error = %m, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Unexpected API Error. {m}"),
        )
    }
    /// 403 for a policy refusal.
    pub fn policy(rule: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {rule} to be performed."))
    }

    /// The fault name for a status (nova's `Fault._fault_names`).
    pub fn name(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            409 => "conflictingRequest",
            413 => "overLimit",
            415 => "badMediaType",
            429 => "overLimit",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl From<nova_objects::Error> for Fault {
    fn from(e: nova_objects::Error) -> Self {
        if e.is_not_found() {
            return Fault::not_found(e.to_string());
        }
        match e {
            nova_objects::Error::Exists { .. } => Fault::conflict(e.to_string()),
            nova_objects::Error::UnexpectedTaskState { .. } => Fault::conflict(e.to_string()),
            nova_objects::Error::MarkerNotFound(m) => {
                Fault::bad_request(format!("marker [{m}] not found"))
            }
            nova_objects::Error::InvalidQuery(m) => Fault::bad_request(m),
            // A database restart or failover: the request may be sent
            // again (reads already were, once, on another connection).
            nova_objects::Error::DbConnection(why) => {
                tracing::warn!(error = %why, "database unavailable");
                Fault::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable; try again later.",
                )
            }
            other => Fault::internal(other),
        }
    }
}

/// Marks a response that already carries a fault body (the fault layer
/// leaves it alone).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rendered;

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let name = Fault::name(self.status);
        let body = json!({ name: { "code": self.status.as_u16(), "message": self.message } });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        r.extensions_mut().insert(Rendered);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_unavailable_not_an_internal_error() {
        let f = Fault::from(nova_objects::Error::DbConnection("restarting".into()));
        assert_eq!(f.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Fault::name(f.status), "serviceUnavailable");
        assert!(!f.message.contains("restarting"), "{}", f.message);
        let f = Fault::from(nova_objects::Error::Db("syntax".into()));
        assert_eq!(f.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
