//! The web dashboard at `/ui` on the admin port: server-rendered pages over the admin API.
//!
//! - [`reader`]: calls the `/api/v1` routes in-process with the visitor's token;
//! - [`pages`]: one reader-and-renderer per page;
//! - [`html`], [`chart`]: markup, escaping and SVG bar charts;
//! - [`usage`]: the usage answers the charts and key pages read.
//!
//! Signing in: a browser posts a token to `/ui/login` (or opens any page once with `?token=`),
//! and gets it back as an HttpOnly, SameSite=Strict cookie scoped to `/ui`. `Authorization:
//! Bearer` works too. The dashboard only reads, so a read-only token is enough; the token is
//! checked by the API itself on every read, never by the dashboard. Everything a page needs (one
//! stylesheet) is compiled into the binary; nothing is fetched from elsewhere.

pub mod chart;
pub mod html;
pub mod pages;
pub mod reader;
pub mod usage;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::admin::views::StatusView;
use crate::service::agent::now_ms;
use pages::Page;
use reader::{ApiReader, ReadError};

/// The cookie holding the visitor's token (base64url, so any token is a valid cookie value).
const COOKIE: &str = "switchyard_ui";
/// How long a sign-in lasts, seconds.
const SESSION_S: u32 = 8 * 3600;
/// The stylesheet, compiled in.
const STYLE: &str = include_str!("style.css");
/// Sent with every dashboard answer: no scripts, no framing, nothing loaded from elsewhere, and
/// no referrer (a `?token=` must not leak through links).
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes; `api` is the token-checked `/api/v1` router the pages read.
pub fn router(api: Router) -> Router {
    Router::new()
        .route("/ui", get(cluster))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/nodes", get(nodes))
        .route("/ui/endpoints", get(endpoints))
        .route("/ui/models", get(models))
        .route("/ui/keys", get(keys))
        .route("/ui/usage", get(usage))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .layer(middleware::from_fn(harden))
        .with_state(api)
}

/// `?token=` signs in; `?range=` picks the usage page's range.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    token: Option<String>,
    range: Option<String>,
}

async fn cluster(s: State<Router>, h: HeaderMap, q: Query<PageQuery>) -> Response {
    show(Page::Cluster, s, h, q).await
}
async fn nodes(s: State<Router>, h: HeaderMap, q: Query<PageQuery>) -> Response {
    show(Page::Nodes, s, h, q).await
}
async fn endpoints(s: State<Router>, h: HeaderMap, q: Query<PageQuery>) -> Response {
    show(Page::Endpoints, s, h, q).await
}
async fn models(s: State<Router>, h: HeaderMap, q: Query<PageQuery>) -> Response {
    show(Page::Models, s, h, q).await
}
async fn keys(s: State<Router>, h: HeaderMap, q: Query<PageQuery>) -> Response {
    show(Page::Keys, s, h, q).await
}
async fn usage(s: State<Router>, h: HeaderMap, q: Query<PageQuery>) -> Response {
    show(Page::Usage, s, h, q).await
}

/// Signs in from `?token=` (then drops it from the address bar), or renders `page` for the
/// token the request carries, or sends the visitor to the sign-in form.
async fn show(
    page: Page,
    State(api): State<Router>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let (path, title) = page.path_and_title();
    if let Some(token) = query.token {
        let clean = match &query.range {
            Some(range) => format!("{path}?range={}", urlencode(range)),
            None => path.to_string(),
        };
        return sign_in(api, token, &clean).await;
    }
    let Some(token) = presented(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let reader = ApiReader::new(api, token);
    let now = now_ms();
    let rendered = async {
        let status: StatusView = reader.get("/status").await?;
        let body = pages::render(page, &reader, &status, query.range.as_deref(), now).await?;
        Ok::<_, ReadError>((status, body))
    }
    .await;
    match rendered {
        Ok((status, body)) => {
            let leader = status
                .leader_id
                .map_or_else(|| "no leader".into(), |id| format!("leader {id}"));
            let footer = format!(
                "Answered by voter {} ({}) · {leader} · revision {} · {}",
                status.node_id,
                status.role,
                status.revision,
                html::utc(now)
            );
            html_page(StatusCode::OK, html::page(path, title, &body, &footer))
        }
        Err(ReadError::Unauthorized) => {
            let mut response = Redirect::to("/ui/login").into_response();
            set_cookie(&mut response, None);
            response
        }
        Err(ReadError::Missing) => html_page(
            StatusCode::BAD_GATEWAY,
            html::page(
                path,
                title,
                &html::empty("the admin API lacks a route this page reads"),
                "",
            ),
        ),
        Err(ReadError::Failed(message)) => html_page(
            StatusCode::BAD_GATEWAY,
            html::page(
                path,
                title,
                &format!("<p class=\"bad\">{}</p>", html::esc(&message)),
                "",
            ),
        ),
    }
}

/// Checks `token` against the API; on success sets the cookie and redirects to `to`.
async fn sign_in(api: Router, token: String, to: &str) -> Response {
    let token = token.trim().to_string();
    match ApiReader::new(api, token.clone())
        .get::<StatusView>("/status")
        .await
    {
        Ok(_) => {
            let mut response = Redirect::to(to).into_response();
            set_cookie(&mut response, Some(&token));
            response
        }
        Err(ReadError::Unauthorized) => html_page(
            StatusCode::UNAUTHORIZED,
            html::login(Some("That token is not accepted.")),
        ),
        Err(ReadError::Missing | ReadError::Failed(_)) => html_page(
            StatusCode::BAD_GATEWAY,
            html::login(Some("The admin API did not answer; try again.")),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login_form() -> Response {
    html_page(StatusCode::OK, html::login(None))
}

async fn login(State(api): State<Router>, Form(form): Form<LoginForm>) -> Response {
    sign_in(api, form.token, "/ui").await
}

async fn logout() -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    set_cookie(&mut response, None);
    response
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

fn html_page(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The token from `Authorization: Bearer …`, else from the dashboard's cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.filter(|t| !t.is_empty()).or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .find_map(|value| URL_SAFE_NO_PAD.decode(value).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|t| !t.is_empty())
    })
}

/// Sets the sign-in cookie to `token`, or expires it with `None`.
fn set_cookie(response: &mut Response, token: Option<&str>) {
    let cookie = match token {
        Some(token) => format!(
            "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={SESSION_S}",
            URL_SAFE_NO_PAD.encode(token)
        ),
        None => format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Security headers on every dashboard answer; pages are never cached (they hold cluster data).
/// Behind a TLS-terminating proxy that says so (`X-Forwarded-Proto: https`), the cookie is also
/// `Secure`. A client that claims it falsely only stops its own browser sending the cookie.
async fn harden(request: Request, next: Next) -> Response {
    let https = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if https {
        let cookies: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| HeaderValue::from_str(&format!("{}; Secure", v.to_str().ok()?)).ok())
            .collect();
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Percent-encodes everything but unreserved characters.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
