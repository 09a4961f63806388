//! Neutron's fault format: `{"NeutronError": {"type", "message", "detail"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request, rendered as Neutron renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeutronError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Neutron's exception name (`NetworkNotFound`, `IpAddressGenerationFailure`).
    pub kind: &'static str,
    /// The message.
    pub message: String,
}

/// A result whose error is Neutron's fault.
pub type NResult<T> = Result<T, NeutronError>;

impl NeutronError {
    /// A fault.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        NeutronError {
            status,
            kind,
            message: message.into(),
        }
    }
    /// 400 `HTTPBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }
    /// 404 `<Kind>NotFound` for `what` (`network`, `port`...).
    pub fn not_found(kind: &'static str, what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            kind,
            format!("{what} {id} could not be found."),
        )
    }
    /// 409.
    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }
    /// 403 `HTTPForbidden` (a policy refusal).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "HTTPForbidden", message)
    }
    /// 503: the database did not take the change.
    pub fn unavailable(e: anyhow::Error) -> Self {
        tracing::error!(error = %e, "network store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The database is not available.",
        )
    }
}

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"NeutronError": {
                "type": self.kind, "message": self.message, "detail": ""}})),
        )
            .into_response()
    }
}
