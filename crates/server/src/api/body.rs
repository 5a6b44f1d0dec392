//! Request bodies and error answers at the edge of the API: the JSON body extractor (size
//! limit, unknown fields, validation messages), the guarantee that every error leaves as
//! `{"code","message"}` JSON, and the draining of bodies a handler refused before reading
//! them, so that the client reads our answer instead of a reset connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper::body::{Frame, SizeHint};
use novacron_api_types::{ApiError, ErrorCode};

use super::ApiFailure;

/// Largest JSON request body (the image upload streams and has no such limit).
pub const MAX_JSON_BODY_BYTES: usize = 2 << 20;

/// How much of a refused body is read and thrown away before the connection is closed.
const DRAIN_MAX_BYTES: u64 = 64 << 20;
/// How long a refused body is drained at most.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// A request body that, when a handler drops it unread (it refused the request early), is
/// drained for a bounded time in the background. Closing a connection with unread data makes
/// the kernel send a reset, and a client still uploading then sees "connection reset" instead
/// of the error we answered.
struct DrainOnDrop {
    inner: Option<Body>,
    finished: bool,
}

impl hyper::body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(hyper::body::Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.finished || hyper::body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(body));
        }
    }
}

/// Reads and discards what is left of a refused body, within bounds.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read >= DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
    tracing::debug!(bytes = read, "drained a refused request body");
}

/// Middleware: every request body drains itself if a handler refuses it unread.
pub async fn drain_refused_bodies(req: Request, next: Next) -> Response {
    let req = req.map(|b| {
        Body::new(DrainOnDrop {
            inner: Some(b),
            finished: false,
        })
    });
    next.run(req).await
}

fn too_large() -> ApiFailure {
    ApiFailure(ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the request body is larger than the API accepts ({} MiB)",
            MAX_JSON_BODY_BYTES >> 20
        ),
    ))
}

/// JSON body extractor: the body is at most [`MAX_JSON_BODY_BYTES`] (413 otherwise), must be
/// `application/json` (415), and must parse into `T` (400 naming the problem, e.g. the
/// unknown field; request types refuse fields they do not know).
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiFailure;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_JSON_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiFailure(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON (Content-Type: application/json)",
            )));
        }
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut stream = req.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiFailure(ApiError::invalid(format!(
                    "the request body could not be read: {e}"
                )))
            })?;
            if bytes.len() + chunk.len() > MAX_JSON_BODY_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiFailure(ApiError::invalid(format!("invalid request body: {e}"))))
    }
}

/// Largest error body rewritten into JSON (anything longer is cut).
const MAX_TEXT_ERROR_BYTES: usize = 4096;

/// Middleware: an error answer that is not JSON (axum's own 405, 413, 415 and extractor
/// rejections, all `text/plain` or empty) becomes `{"code","message"}` with the same status
/// and headers (`Allow` stays on a 405).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT_ERROR_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = ErrorCode::from_http_status(status.as_u16());
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            format!("{method} is not allowed on {path} (allowed: {allowed})")
        }
        StatusCode::PAYLOAD_TOO_LARGE => too_large().0.message,
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
        _ => text,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ApiError::new(code, message)).unwrap_or_default();
    let mut out = (status, body).into_response();
    for (k, v) in parts.headers.iter() {
        out.headers_mut().insert(k.clone(), v.clone());
    }
    out
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
