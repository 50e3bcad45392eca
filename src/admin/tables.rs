//! The route table API (embedded tables are writable; Redis tables are read in Redis):
//!
//! | call                              | answer                                               |
//! |-----------------------------------|------------------------------------------------------|
//! | `GET /api/tables/<name>`          | `[{key,target,created,last_activity}]`, by key       |
//! | `GET /api/tables/<name>/<key>`    | the entry, or 404                                    |
//! | `PUT /api/tables/<name>/<key>`    | body `{"target":"10.244.1.58:9999"}`: 201 new, 200 replaced, 400 invalid |
//! | `DELETE /api/tables/<name>/<key>` | 204, or 404                                          |
//!
//! Times are RFC 3339 (UTC). Unknown table: 404; a Redis table: 405 for PUT and DELETE, 409
//! for GET (the entries are in Redis). The token check is done by the caller.

use super::rfc3339;
use crate::app::App;
use crate::route::table::embedded::EntryView;
use crate::route::table::{valid_key, Store};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};

/// Largest PUT body accepted.
const MAX_BODY: usize = 4096;

#[derive(Serialize)]
struct Entry {
    key: String,
    target: String,
    created: String,
    last_activity: String,
}

fn entry(e: &EntryView) -> Entry {
    let t = |s: u64| rfc3339::format(UNIX_EPOCH + Duration::from_secs(s));
    Entry {
        key: e.key.clone(),
        target: e.target.to_string(),
        created: t(e.created),
        last_activity: t(e.last_activity),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    target: String,
}

/// An answer: status and body (JSON, or a plain-text reason for errors).
pub type Answer = (StatusCode, String, bool);

fn json(status: StatusCode, v: &impl Serialize) -> Answer {
    // Plain structs of strings: serialising cannot fail.
    (
        status,
        serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
        true,
    )
}

fn plain(status: StatusCode, msg: impl Into<String>) -> Answer {
    (status, msg.into() + "\n", false)
}

/// Handles `/api/tables/<rest>` (`rest` = `<name>` or `<name>/<key>`).
pub async fn handle(app: &App, method: &Method, rest: &str, body: Incoming) -> Answer {
    let (name, key) = match rest.split_once('/') {
        Some((n, k)) => (n, Some(k)),
        None => (rest, None),
    };
    let table = {
        let rt = app.shared.runtime();
        match rt.table(name) {
            Some(t) => t.clone(),
            None => return plain(StatusCode::NOT_FOUND, format!("no table {name:?}")),
        }
    };
    let store = match table.store() {
        Store::Embedded(s) => s.clone(),
        Store::Redis(_) => {
            let status = if method == Method::GET {
                StatusCode::CONFLICT
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            return plain(
                status,
                format!("table {name:?} is stored in Redis: read and write it there (HGET/HSET {name} <key>)"),
            );
        }
    };
    let Some(key) = key else {
        if method != Method::GET {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET on a table");
        }
        let entries: Vec<Entry> = store.list().iter().map(entry).collect();
        return json(StatusCode::OK, &entries);
    };
    if !valid_key(key) {
        return plain(
            StatusCode::BAD_REQUEST,
            "invalid key (1-256 of A-Z a-z 0-9 . _ - ~)",
        );
    }
    match *method {
        Method::GET => match store.get(key) {
            Some(e) => json(StatusCode::OK, &entry(&e)),
            None => plain(StatusCode::NOT_FOUND, format!("no key {key:?} in {name:?}")),
        },
        Method::PUT => {
            let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        format!("body unreadable or larger than {MAX_BODY} bytes"),
                    )
                }
            };
            let put: PutBody = match serde_json::from_slice(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        format!("body must be {{\"target\": \"ip:port\"}}: {e}"),
                    )
                }
            };
            let target = match crate::config::table::parse_target(put.target.trim()) {
                Ok(t) => t,
                Err(e) => return plain(StatusCode::BAD_REQUEST, e),
            };
            if !table.config().allows(target.ip()) {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("target {target} is outside the table's allow list"),
                );
            }
            let key = key.to_owned();
            match tokio::task::spawn_blocking(move || store.put(&key, target)).await {
                Ok(Ok((e, true))) => json(StatusCode::CREATED, &entry(&e)),
                Ok(Ok((e, false))) => json(StatusCode::OK, &entry(&e)),
                Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        Method::DELETE => {
            let k = key.to_owned();
            match tokio::task::spawn_blocking(move || store.delete(&k)).await {
                Ok(Ok(true)) => (StatusCode::NO_CONTENT, String::new(), false),
                Ok(Ok(false)) => {
                    plain(StatusCode::NOT_FOUND, format!("no key {key:?} in {name:?}"))
                }
                Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "GET, PUT or DELETE"),
    }
}
