//! Bearer tokens (`--token-file`), compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// Whether `presented` is one of `tokens`. Every token is compared, each in time that
/// depends only on the lengths, so the answer's timing does not tell which bytes (or
/// which token) matched.
pub(crate) fn token_matches(tokens: &[String], presented: &str) -> bool {
    let mut any = subtle::Choice::from(0u8);
    for token in tokens {
        any |= token.as_bytes().ct_eq(presented.as_bytes());
    }
    any.into()
}

/// Refuses a `/v1` request without a valid `Authorization: Bearer TOKEN` with 401 (when
/// the service has tokens).
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if state.tokens.is_empty() {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(token) if token_matches(&state.tokens, token) => next.run(req).await,
        Some(_) => unauthorized("the bearer token is not valid"),
        None => unauthorized("missing `Authorization: Bearer TOKEN`"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listed_token_matches() {
        let tokens = vec!["alpha-123".to_string(), "beta-456".to_string()];
        assert!(token_matches(&tokens, "alpha-123"));
        assert!(token_matches(&tokens, "beta-456"));
        assert!(!token_matches(&tokens, "alpha-12"));
        assert!(!token_matches(&tokens, "alpha-1234"));
        assert!(!token_matches(&tokens, ""));
        assert!(!token_matches(&[], "alpha-123"));
    }
}
