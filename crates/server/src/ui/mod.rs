//! The web console at `/ui/`: three static files embedded in the binary (a page, a script, a
//! stylesheet). The page holds no data: the script calls the same `/api/v1` as the CLI with
//! the user's bearer token, so the API's role gate decides every read and every action, and
//! there is no cookie a forged cross-site request could ride on.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file and its validator.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Asset {
        let hash = blake3::hash(body.as_bytes()).to_hex();
        Asset {
            body,
            content_type,
            etag: format!("\"{}\"", &hash[..32]),
        }
    }
}

static INDEX: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("index.html"), "text/html; charset=utf-8"));
static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("app.js"), "text/javascript; charset=utf-8"));
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("app.css"), "text/css; charset=utf-8"));
/// xterm.js 5.5.0 (MIT, `vendor/xterm-5.5.0/LICENSE`), as published on npm
/// (`@xterm/xterm`): the browser terminal of the serial console.
static XTERM_SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("vendor/xterm-5.5.0/xterm.js"),
        "text/javascript; charset=utf-8",
    )
});
static XTERM_STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("vendor/xterm-5.5.0/xterm.css"),
        "text/css; charset=utf-8",
    )
});

/// noVNC 1.4.0 (MPL-2.0, with pako under MIT: `vendor/novnc-1.4.0/LICENSE.txt`), its RFB
/// client bundled into one script (`vendor/novnc-1.4.0/README.md` says how): the web
/// console's screen of VMs created with `--vnc`, loaded only when a screen is opened.
static NOVNC_SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("vendor/novnc-1.4.0/novnc.js"),
        "text/javascript; charset=utf-8",
    )
});

/// What the browser may load and run: only the console's own scripts, and connections to
/// this origin (the API and its WebSockets); no inline script, no frames, no plugins.
/// Inline styles are allowed because xterm.js sizes its terminal with `<style>` elements it
/// creates.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes. They are not API routes (no token, no audit record, not in the
/// OpenAPI document): what they serve is the same for everyone.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let files: [(&str, &'static LazyLock<Asset>); 6] = [
        ("/ui/", &INDEX),
        ("/ui/app.js", &SCRIPT),
        ("/ui/app.css", &STYLE),
        ("/ui/vendor/xterm.js", &XTERM_SCRIPT),
        ("/ui/vendor/xterm.css", &XTERM_STYLE),
        ("/ui/vendor/novnc.js", &NOVNC_SCRIPT),
    ];
    files
        .into_iter()
        .fold(Router::new(), |router, (path, asset)| {
            router.route(
                path,
                get(move |h: HeaderMap| async move { serve(asset, &h) }),
            )
        })
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/{*rest}", get(|| async { not_found() }))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "no such page of the web console: open /ui/\n",
    )
        .into_response()
}

/// The file, or 304 when the browser's copy is current; revalidated on every load so a new
/// binary's console is used at once.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn serves_the_page_and_its_files_with_a_strict_policy() {
        for (path, kind, needle) in [
            ("/ui/", "text/html", "/ui/app.js"),
            ("/ui/app.js", "text/javascript", "/api/v1/events"),
            ("/ui/app.css", "text/css", "prefers-color-scheme"),
            ("/ui/vendor/xterm.js", "text/javascript", "Terminal"),
            ("/ui/vendor/xterm.css", "text/css", ".xterm"),
            ("/ui/vendor/novnc.js", "text/javascript", "NovncRFB"),
        ] {
            let resp = get(path, None).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let h = resp.headers().clone();
            assert!(
                h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind),
                "{path}"
            );
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(text(resp).await.contains(needle), "{path}");
        }
    }

    #[tokio::test]
    async fn a_current_copy_gets_304_and_a_stale_one_the_file() {
        let etag = get("/ui/app.js", None).await.headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_string();
        let resp = get("/ui/app.js", Some(&etag)).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert!(text(resp).await.is_empty());
        let resp = get("/ui/app.js", Some("\"0123\"")).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn root_redirects_and_unknown_pages_are_404() {
        let resp = get("/", None).await;
        assert!(resp.status().is_redirection());
        assert_eq!(resp.headers()[header::LOCATION], "/ui/");
        assert_eq!(
            get("/ui/../api/v1/vms", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/ui/app.js.map", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    /// The page never puts data into HTML: the script builds every element with text nodes.
    #[test]
    fn the_script_never_parses_html_from_data() {
        let script = SCRIPT.body;
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(banned), "app.js uses {banned}");
        }
        let page = INDEX.body;
        assert!(!page.contains("<script>"), "no inline script in the page");
        assert!(!page.contains("style="), "no inline style in the page");
    }
}
