//! What a browser downloads of the UI from `webchat-local`: the wasm and js that
//! `index.html` loads, each requested with the `Accept-Encoding` Chromium sends, counted
//! as the response bodies came over the socket (still compressed).

use crate::local::LocalGateway;
use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;

/// What Chromium asks for.
pub(crate) const ACCEPT_ENCODING: &str = "br, gzip";

/// One file as it was downloaded.
pub(crate) struct Downloaded {
    pub url: String,
    /// `Content-Encoding`, if any.
    pub encoding: Option<String>,
    /// Body bytes as sent.
    pub bytes: u64,
}

/// Serves `dist` with `local_bin` and downloads the wasm and js its `index.html` names.
pub(crate) async fn measure(local_bin: &Path, dist: &Path) -> Result<Vec<Downloaded>> {
    let gateway = LocalGateway::serving(local_bin, dist)?;
    let page = gateway.page_url();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<axum::body::Bytes>>();
    let get = |url: String, accept: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut request = http::Request::get(&url);
            if let Some(accept) = accept {
                request = request.header(http::header::ACCEPT_ENCODING, accept);
            }
            let response = client
                .request(request.body(Empty::new())?)
                .await
                .with_context(|| format!("GET {url}"))?;
            if !response.status().is_success() {
                bail!("GET {url}: {}", response.status());
            }
            let encoding = response
                .headers()
                .get(http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((encoding, body))
        }
    };
    // The page itself as plain text, to read what it loads.
    let (_, html) = get(page.clone(), None).await?;
    let html = String::from_utf8_lossy(&html);
    let assets = referenced_assets(&html);
    if !assets
        .iter()
        .any(|a| Path::new(a).extension() == Some("wasm".as_ref()))
    {
        bail!(
            "{page} names no .wasm file; is {} a built UI?",
            dist.display()
        );
    }
    let mut downloaded = Vec::new();
    for asset in assets {
        let url = format!(
            "{page}{}",
            asset.trim_start_matches("./").trim_start_matches('/')
        );
        let (encoding, body) = get(url.clone(), Some(ACCEPT_ENCODING)).await?;
        downloaded.push(Downloaded {
            url,
            encoding,
            bytes: body.len() as u64,
        });
    }
    drop(gateway);
    Ok(downloaded)
}

/// The same-site `.wasm` and `.js` URLs a page names in quotes (trunk's `index.html` names
/// them in `<link rel=preload>`/`modulepreload` and in its loader script), each once.
fn referenced_assets(html: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for suffix in [".wasm", ".js"] {
        for (at, _) in html.match_indices(suffix) {
            let end = at + suffix.len();
            let Some(quote) = html[end..]
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\''))
            else {
                continue;
            };
            let Some(start) = html[..at].rfind(quote) else {
                continue;
            };
            let url = &html[start + 1..end];
            let plain = !url.is_empty()
                && !url.contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '='))
                && !url.contains("://");
            if plain && !found.iter().any(|f| f == url) {
                found.push(url.to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::referenced_assets;

    #[test]
    fn the_pages_wasm_and_js_are_found_once_each() {
        let html = r#"<!DOCTYPE html><html><head>
<link rel="stylesheet" href="./style-1.css" integrity="sha384-x"/>
<script type="module">
import init, * as bindings from './app-9f.js';
const wasm = await init({ module_or_path: './app-9f_bg.wasm' });
</script>
<link rel="modulepreload" href="./app-9f.js" crossorigin="anonymous">
<link rel="preload" href="./app-9f_bg.wasm" as="fetch" type="application/wasm">
<script src="https://elsewhere.example/x.js"></script>
</head><body><p>Don't load .js files here</p></body></html>"#;
        assert_eq!(referenced_assets(html), ["./app-9f_bg.wasm", "./app-9f.js"]);
    }
}
