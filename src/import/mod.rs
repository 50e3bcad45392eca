//! `swarmgate import nginx PATH`: reads an nginx configuration (with its includes) and prints
//! the equivalent swarmgate YAML; what cannot be translated is listed on stderr as
//! `file:line: directive: reason`. `lexer` → `parse` (blocks, includes) → `translate` (into
//! `model`) → `emit` (YAML text with the nginx origin of each value as a comment).

mod emit;
pub mod lexer;
mod model;
pub mod parse;
mod translate;

pub use parse::ParseError;

use std::path::Path;

/// The result of an import.
#[derive(Debug)]
pub struct Imported {
    /// The swarmgate config (YAML).
    pub yaml: String,
    /// `file:line: directive: reason` for everything not translated.
    pub skipped: Vec<String>,
}

/// Imports the nginx configuration at `path`.
pub fn nginx(path: &Path) -> Result<Imported, ParseError> {
    let tree = parse::parse_file(path)?;
    let mut t = translate::Translator::new();
    t.main(&tree);
    t.out.notes.push(format!(
        "Imported from {} by `swarmgate import nginx`.",
        path.display()
    ));
    t.out.notes.push(
        "Always on in swarmgate, whatever nginx said: HTTP/1.1 upstream with keepalive, \
         streaming bodies (no buffering), hop-by-hop headers removed, X-Forwarded-For / \
         X-Real-IP / X-Forwarded-Proto set, client Host passed, WebSocket upgrades."
            .into(),
    );
    if !t.skipped.is_empty() {
        t.out.notes.push(format!(
            "{} directive(s) not translated: see the import's stderr.",
            t.skipped.len()
        ));
    }
    Ok(Imported {
        yaml: emit::render(&t.out),
        skipped: t.skipped,
    })
}
