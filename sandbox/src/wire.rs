//! What the API server reads off the wire and answers, apart from how it answers: shared by the
//! request handling (`cluster`), discovery and the HTTP server.

use std::collections::HashMap;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::rbac::UserInfo;

/// One API request, already read off the wire.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub accept: String,
    pub content_type: String,
    pub user: Option<UserInfo>,
    pub body: Vec<u8>,
}

/// The answer to an API request.
pub enum Reply {
    Json {
        code: u16,
        body: Value,
        warnings: Vec<String>,
    },
    Text(u16, String),
    /// A watch: one JSON event per message, until the sender goes away.
    Watch(mpsc::Receiver<Value>),
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Reply::Json {
            code: 200,
            body,
            warnings: vec![],
        }
    }
}
