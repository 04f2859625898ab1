//! The usage webhook: each batch of events is one `POST` of a JSON array (LLMProxy's fields,
//! see [`Event`]) with an optional bearer token. Also the small HTTP sender the OTLP exporter
//! shares: it classifies answers into delivered, worth retrying (no connection, timeout, 408,
//! 429, 5xx) and refused (any other status: the batch is dropped, as sending it again would be
//! refused again).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::event::Event;
use super::outbox::Failure;
use crate::config::Secret;
use crate::upstream::client::{Connector, https_connector};

/// Longest one delivery may take, connection included.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON `POST`er to one receiver.
#[derive(Debug)]
pub struct Poster {
    uri: Uri,
    /// `Bearer <token>`, marked sensitive.
    authorization: Option<HeaderValue>,
    connector: Connector,
    /// Built in the delivery task, so its connections live on that task's runtime.
    client: Option<Client<Connector, Full<Bytes>>>,
}

impl Poster {
    /// A poster to `uri`, with `token` as a bearer token when set; a token that is not a
    /// header value is an error naming `field`.
    pub fn new(
        uri: Uri,
        token: Option<&Secret>,
        connect_timeout: Duration,
        field: &'static str,
    ) -> Result<Self, crate::Error> {
        let authorization = token
            .map(|t| {
                let mut v =
                    HeaderValue::try_from(format!("Bearer {}", t.expose())).map_err(|_| {
                        crate::Error::InvalidConfig {
                            field,
                            reason: "is not a valid header value".to_owned(),
                        }
                    })?;
                v.set_sensitive(true);
                Ok::<_, crate::Error>(v)
            })
            .transpose()?;
        Ok(Self {
            uri,
            authorization,
            connector: https_connector(connect_timeout),
            client: None,
        })
    }

    /// Sends `body` as JSON; `Ok` on any 2xx.
    pub async fn post(&mut self, body: Vec<u8>) -> Result<(), Failure> {
        let client = self.client.get_or_insert_with(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(self.connector.clone())
        });
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(v) = &self.authorization {
            headers.insert(AUTHORIZATION, v.clone());
        }
        let sent = async {
            let response = client.request(request).await.map_err(|e| Failure {
                retry: true,
                why: if e.is_connect() {
                    "cannot connect".to_owned()
                } else {
                    "the connection broke".to_owned()
                },
            })?;
            let status = response.status();
            // Read the answer so the connection can be reused.
            let _answer = response.into_body().collect().await;
            if status.is_success() {
                return Ok(());
            }
            let code = status.as_u16();
            Err(Failure {
                retry: status.is_server_error() || code == 408 || code == 429,
                why: format!("answered {code}"),
            })
        };
        match tokio::time::timeout(POST_TIMEOUT, sent).await {
            Ok(result) => result,
            Err(_) => Err(Failure {
                retry: true,
                why: format!("no answer within {POST_TIMEOUT:?}"),
            }),
        }
    }
}

/// The webhook sink.
#[derive(Debug)]
pub struct Webhook {
    poster: Poster,
}

impl Webhook {
    /// A webhook posting through `poster`.
    pub fn new(poster: Poster) -> Self {
        Self { poster }
    }

    /// Posts `batch` as one JSON array.
    pub async fn deliver(&mut self, batch: &[Arc<Event>]) -> Result<(), Failure> {
        let events: Vec<&Event> = batch.iter().map(|e| &**e).collect();
        let body = serde_json::to_vec(&events).map_err(|e| Failure {
            retry: false,
            why: e.to_string(),
        })?;
        self.poster.post(body).await
    }
}
