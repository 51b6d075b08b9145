//! The error answer of every route: `{"error": {"kind", "message", "field"?}}` with its
//! status (contract `service.md` section 2).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable kind (`input`, `config`, `unsupported`, `not_found`, ...).
    pub kind: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The field of the request at fault, as the CLI names it (`channels[2].response.k`).
    pub field: Option<String>,
    /// Seconds a client should wait before retrying (429).
    pub retry_after_s: Option<u64>,
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A short machine-readable kind.
    pub kind: String,
    /// What is wrong, for people.
    pub message: String,
    /// The field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status, kind and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }

    /// A 400 about one field of the request.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "input", message).with_field(field)
    }

    /// The same error naming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// 404 for an id nothing has.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} `{id}`"),
        )
    }

    /// 500 for a fault of the service (logged; never for bad input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<atlas_store::StoreError> for ApiError {
    fn from(error: atlas_store::StoreError) -> Self {
        match &error {
            atlas_store::StoreError::InvalidInput { field, reason } => {
                ApiError::bad_field(field.clone(), format!("{field}: {reason}"))
            }
            e if e.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            e => {
                tracing::error!(error = %e, "storage error");
                ApiError::internal(format!("storage error: {e}"))
            }
        }
    }
}

impl From<atlas_core::Error> for ApiError {
    /// Maps a problem or configuration error to its status, naming the field as the CLI
    /// does (without a file: requests carry no files).
    fn from(error: atlas_core::Error) -> Self {
        use atlas_core::Error as E;
        match error {
            E::Input(mut e) => {
                e.file = None;
                let field = e.field.clone();
                ApiError::bad_field(field, e.to_string())
            }
            E::Config(e) => {
                let field = if e.field.is_empty() {
                    "settings".to_string()
                } else {
                    format!("settings.{}", e.field)
                };
                let message = E::Config(e).to_string();
                ApiError::new(StatusCode::BAD_REQUEST, "config", message).with_field(field)
            }
            e @ E::UnknownOptimizer { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_optimizer", e.to_string())
                    .with_field("optimizer")
            }
            e @ E::Unsupported { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported",
                e.to_string(),
            )
            .with_field("optimizer"),
            E::Infeasible(mut e) => {
                e.file = None;
                ApiError::new(StatusCode::BAD_REQUEST, "infeasible", e.to_string())
                    .with_field("problem")
            }
            e @ E::Io { .. } => ApiError::new(StatusCode::BAD_REQUEST, "input", e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
