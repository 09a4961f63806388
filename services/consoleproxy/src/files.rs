//! The web client's pages (websockify's `--web`): files under the
//! directory, by path; `..` and hidden names refused.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "application/javascript",
        "css" => "text/css",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "ogg" | "oga" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file `uri_path` names under `root`, if it is a plain relative path.
fn resolve(root: &Path, uri_path: &str) -> Option<PathBuf> {
    let decoded: String = percent_decode(uri_path)?;
    let rel = Path::new(decoded.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => {
                if n.to_str().is_none_or(|s| s.starts_with('.')) {
                    return None;
                }
                out.push(n);
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `GET`/`HEAD` of a file under `web`; 404 otherwise, 405 for other
/// methods.
pub(crate) async fn serve(web: Option<&Path>, method: Method, uri_path: String) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(root) = web else {
        return (StatusCode::NOT_FOUND, "no web client here\n").into_response();
    };
    let Some(path) = resolve(root, &uri_path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_dir() => path.join("index.html"),
        _ => path,
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes)
            };
            Response::builder()
                .header(header::CONTENT_TYPE, content_type(&path))
                .header(header::CACHE_CONTROL, "no-cache")
                .body(body)
                .unwrap_or_default()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let r = Path::new("/w");
        assert_eq!(resolve(r, "/vnc.html"), Some(PathBuf::from("/w/vnc.html")));
        assert_eq!(
            resolve(r, "/app/ui.js"),
            Some(PathBuf::from("/w/app/ui.js"))
        );
        assert_eq!(resolve(r, "/../etc/passwd"), None);
        assert_eq!(resolve(r, "/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(r, "/.git/config"), None);
    }
}
