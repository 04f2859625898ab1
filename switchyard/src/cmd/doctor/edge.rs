//! The last checks, against the edge: it holds a routing table (`/health/readiness`), and a
//! test request succeeds (`/v1/models`, and one tiny chat with `--chat`).

use super::{DoctorArgs, Report, Status, Verdict, chain, names};

/// What `GET /health/readiness` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// 2xx: the edge holds a table.
    Ready,
    /// Another status (the URL asked, the status).
    Answered(String, String),
    /// No answer (the URL asked, the innermost cause).
    Unreachable(String, String),
}

/// `GET /health/readiness` on the edge at `edge`.
pub async fn probe_readiness(client: &reqwest::Client, edge: &str) -> Readiness {
    let url = format!("{edge}/health/readiness");
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Readiness::Ready,
        Ok(response) => Readiness::Answered(url, response.status().to_string()),
        Err(e) => Readiness::Unreachable(url, chain(&e)),
    }
}

/// The report's line for what [`probe_readiness`] found at `edge`.
pub fn judge_readiness(edge: &str, r: &Readiness) -> Verdict {
    match r {
        Readiness::Ready => Verdict::new(Status::Pass, format!("{edge} is ready")),
        Readiness::Answered(url, status) => {
            Verdict::new(Status::Fail, format!("{url} answered {status}")).hint(
                "the edge has no routing table yet: does its --control-plane point at a voter \
                 it can reach?",
            )
        }
        Readiness::Unreachable(url, error) => {
            Verdict::new(Status::Fail, format!("cannot reach {url}: {error}"))
                .hint("is `switchyard edge` running there? pass its address with --edge")
        }
    }
}

/// `GET /v1/models`, then (with `--chat`) one short chat to the first model.
pub(super) async fn test_request(
    args: &DoctorArgs,
    client: &reqwest::Client,
    edge: &str,
    report: &mut Report,
) {
    let authed = |request: reqwest::RequestBuilder| match &args.api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let models = match fetch_models(authed(client.get(format!("{edge}/v1/models")))).await {
        Ok(models) => models,
        Err((detail, hint)) => {
            report.push_hint(names::TEST_REQUEST, Status::Fail, detail, hint);
            return;
        }
    };
    let Some(first) = models.first() else {
        report.push_hint(
            names::TEST_REQUEST,
            Status::Fail,
            "GET /v1/models lists no models",
            "the edge serves, but no backend offers a model yet",
        );
        return;
    };
    let listed = preview(&models);
    if !args.chat {
        report.push(
            names::TEST_REQUEST,
            Status::Pass,
            format!("GET /v1/models lists {listed} (add --chat to send one chat to {first})"),
        );
        return;
    }
    let body = serde_json::json!({
        "model": first,
        "messages": [{"role": "user", "content": "Reply with the word ok."}],
        "max_tokens": 8,
    });
    let request = authed(
        client
            .post(format!("{edge}/v1/chat/completions"))
            .json(&body),
    );
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            let served = response
                .headers()
                .get("x-switchyard-endpoint")
                .and_then(|v| v.to_str().ok())
                .map(|e| format!(" via {e}"))
                .unwrap_or_default();
            report.push(
                names::TEST_REQUEST,
                Status::Pass,
                format!("GET /v1/models lists {listed}; a chat to {first} answered{served}"),
            );
        }
        Ok(response) => {
            let status = response.status();
            let message = error_message(response).await;
            report.push_hint(
                names::TEST_REQUEST,
                Status::Fail,
                format!("a chat to {first} answered {status}: {message}"),
                "the edge routed the request but the upstream refused it; check the \
                 endpoint's URL and provider key",
            );
        }
        Err(e) => report.push(
            names::TEST_REQUEST,
            Status::Fail,
            format!("a chat to {first} failed: {}", chain(&e)),
        ),
    }
}

/// The model ids of a `/v1/models` answer, or what went wrong and what to do.
async fn fetch_models(request: reqwest::RequestBuilder) -> Result<Vec<String>, (String, String)> {
    let response = request.send().await.map_err(|e| {
        (
            format!("GET /v1/models failed: {}", chain(&e)),
            "the edge answered its health check but not /v1; look at its log".to_owned(),
        )
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let message = error_message(response).await;
        return Err((
            format!("GET /v1/models answered {status}: {message}"),
            "the cluster has client keys: pass one with --api-key (SWITCHYARD_API_KEY)".into(),
        ));
    }
    if !status.is_success() {
        let message = error_message(response).await;
        return Err((
            format!("GET /v1/models answered {status}: {message}"),
            "look at the edge's log".into(),
        ));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| {
        (
            format!("GET /v1/models did not return JSON: {e}"),
            "is --edge pointing at a Switchyard edge?".to_owned(),
        )
    })?;
    Ok(body
        .get("data")
        .and_then(|d| d.as_array())
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m.get("id")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The OpenAI-shaped error message of a response, or its status text.
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Option<serde_json::Value> = response.json().await.ok();
    body.as_ref()
        .and_then(|b| b.pointer("/error/message"))
        .and_then(|m| m.as_str())
        .map_or_else(|| status.to_string(), str::to_owned)
}

/// `3 models (a, b, c)` with at most five names.
fn preview(models: &[String]) -> String {
    let shown: Vec<&str> = models.iter().take(5).map(String::as_str).collect();
    let more = if models.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    let noun = if models.len() == 1 { "model" } else { "models" };
    format!("{} {noun} ({}{more})", models.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_judged() {
        let url = "http://e/health/readiness".to_owned();
        let cases = [
            (Readiness::Ready, Status::Pass, "http://e is ready", false),
            (
                Readiness::Answered(url.clone(), "503 Service Unavailable".into()),
                Status::Fail,
                "http://e/health/readiness answered 503 Service Unavailable",
                true,
            ),
            (
                Readiness::Unreachable(url, "Connection refused".into()),
                Status::Fail,
                "cannot reach http://e/health/readiness: Connection refused",
                true,
            ),
        ];
        for (r, status, detail, advised) in cases {
            let v = judge_readiness("http://e", &r);
            assert_eq!(
                (v.status, v.detail.as_str(), v.hint.is_some()),
                (status, detail, advised)
            );
        }
    }

    #[test]
    fn previews_are_short() {
        let many: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        assert_eq!(preview(&many), "7 models (m0, m1, m2, m3, m4, …)");
        assert_eq!(preview(&many[..1]), "1 model (m0)");
    }
}
