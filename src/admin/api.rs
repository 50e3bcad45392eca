//! `GET /api/upstreams`: every upstream with its servers and discovery status, as JSON
//! (`{"upstreams":[{"name":..,"servers":[{"address":..,"healthy":..,"state":..}]}]}`).

use super::view::{snapshot, Snapshot};
use crate::app::App;
use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    version: &'static str,
    uptime_seconds: u64,
    /// Whether `/readyz` answers 200, and why not.
    ready: bool,
    not_ready_reason: Option<String>,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
}

/// The JSON document served at `/api/upstreams`.
pub fn upstreams_json(app: &App) -> String {
    let snap = snapshot(app);
    let ready = super::readiness(app);
    let body = Body {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: app.uptime().as_secs(),
        ready: ready.is_ok(),
        not_ready_reason: ready.err(),
        snapshot: &snap,
    };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
