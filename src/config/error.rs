use std::path::PathBuf;

/// A configuration error. Every variant's message names the key path and, where the YAML
/// parser or the source text tells it, the line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Syntax, unknown key or bad value, as reported by serde_yaml (path, line and column).
    #[error("{0}")]
    Yaml(String),
    /// A semantic error found after parsing.
    #[error("{key}: {message}{}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Invalid {
        key: String,
        line: Option<usize>,
        message: String,
    },
}
