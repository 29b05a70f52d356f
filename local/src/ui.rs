//! The built UI (`--static-dir`), served beside the gateway with a generated
//! `/config.json` that points it at this gateway.

use crate::dev_issuer;
use crate::gateway::Gateway;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use std::path::Path;
use std::sync::Arc;

/// `/config.json`, and every other path not routed elsewhere from `dir`.
pub(crate) fn routes(dir: &Path) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/config.json", get(ui_config))
        .fallback_service(static_files(dir))
}

/// The built UI in `dir` as files. A file with a precompressed sibling (`.br`, `.gz`,
/// which `cargo xtask ui` writes) is answered with the sibling when `Accept-Encoding`
/// allows it, brotli before gzip, with the original's `Content-Type` and the sibling's
/// `Content-Encoding`; otherwise with the file itself. Every answer says it varies by
/// `Accept-Encoding`, so no cache hands a brotli body to a client that asked without.
fn static_files(
    dir: &Path,
) -> tower_http::set_header::SetResponseHeader<tower_http::services::ServeDir, http::HeaderValue> {
    tower_http::set_header::SetResponseHeader::appending(
        tower_http::services::ServeDir::new(dir)
            .precompressed_br()
            .precompressed_gzip(),
        http::header::VARY,
        http::HeaderValue::from_static("accept-encoding"),
    )
}

/// `config.json` for the UI: the WebSocket URL as the browser should reach it,
/// `allowWsOverride`, since this is a development server: `?ws=` may point the page at
/// another gateway (a hosted site's own `config.json` leaves it out, so a crafted link
/// cannot send people's names and messages elsewhere), and with `--auth dev` the sign-in
/// settings (`auth`: `issuer`, `clientId`, `authorizeUrl`, `tokenUrl`, `logoutUrl`).
async fn ui_config(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> impl IntoResponse {
    // The Host header is what the browser used, so a UI opened via another name or a
    // proxy still finds the gateway.
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| gateway.api.domain_name.clone(), str::to_string);
    let mut config = serde_json::json!({
        "websocketUrl": format!("ws://{host}/{}", gateway.api.stage),
        "allowWsOverride": true,
    });
    // With `--auth dev` the UI signs in at the development issuer: the same shape
    // `cargo xtask deploy` writes for Cognito's hosted UI.
    if let Some(sign_in) = &gateway.sign_in {
        let issuer = sign_in.issuer.issuer();
        config["auth"] = serde_json::json!({
            "issuer": issuer,
            "clientId": sign_in.issuer.client_id(),
            "authorizeUrl": format!("{issuer}{}", dev_issuer::AUTHORIZE_PATH),
            "tokenUrl": format!("{issuer}{}", dev_issuer::TOKEN_PATH),
            "logoutUrl": format!("{issuer}{}", dev_issuer::LOGOUT_PATH),
        });
    }
    axum::Json(config)
}
