//! The HTTPS front: axum on rustls, every request turned into an [`ApiRequest`] for the cluster.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::cluster::{ApiRequest, Cluster, Reply};

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub fn router(cluster: Arc<Cluster>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(cluster)
}

async fn handle(
    State(cluster): State<Arc<Cluster>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = header_str(&headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim);
    let as_user = header_str(&headers, "impersonate-user");
    let as_groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let reply = match cluster.authenticate(token, as_user, &as_groups) {
        Ok(user) => {
            let req = ApiRequest {
                method: method.as_str().to_owned(),
                path: uri.path().to_owned(),
                query,
                accept: header_str(&headers, "accept").unwrap_or("").to_owned(),
                content_type: header_str(&headers, "content-type")
                    .unwrap_or("application/json")
                    .to_owned(),
                user: Some(user),
                body: body.to_vec(),
            };
            cluster.handle(req).await
        }
        Err(e) => e.into(),
    };
    into_response(reply)
}

fn into_response(reply: Reply) -> Response {
    let mut resp = match reply {
        Reply::Json {
            code,
            body,
            warnings,
        } => {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            for w in warnings {
                let text = format!("299 - {}", serde_json::Value::String(w));
                if let Ok(v) = HeaderValue::from_str(&text) {
                    r.headers_mut().append("warning", v);
                }
            }
            r
        }
        Reply::Text(code, text) => {
            let mut r = Response::new(Body::from(text));
            *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Reply::Watch(rx) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                let ev = rx.recv().await?;
                let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                line.push(b'\n');
                Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
            });
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            r
        }
    };
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}
