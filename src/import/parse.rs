//! nginx configuration → a tree of [`Directive`]s. `include` is expanded in place: a relative
//! pattern is relative to the main file's directory (nginx's conf prefix); `*`, `?` and `[..]`
//! in the last path component match files, in sorted order as nginx does; a pattern without
//! wildcards must name an existing file.

use super::lexer::{tokenize, Tok, Token};
use std::path::{Path, PathBuf};

/// One directive: `name args... ;` or `name args... { block }`.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    /// The file it was read from (as shown in messages) and its line.
    pub file: String,
    pub line: usize,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// `file:line`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Why a file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
}

/// Reads `path` and every file it includes.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, ParseError> {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut depth = 0;
    read(path, &base, &mut depth)
}

const MAX_INCLUDE_DEPTH: usize = 32;

fn read(path: &Path, base: &Path, depth: &mut usize) -> Result<Vec<Directive>, ParseError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ParseError::Io {
        file: file.clone(),
        source,
    })?;
    let tokens = tokenize(&text).map_err(|(line, message)| ParseError::Syntax {
        file: file.clone(),
        line,
        message,
    })?;
    let mut p = Parser {
        tokens,
        pos: 0,
        file,
        base: base.to_path_buf(),
    };
    let out = p.block(depth, false)?;
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    file: String,
    base: PathBuf,
}

impl Parser {
    fn err(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            file: self.file.clone(),
            line,
            message: message.into(),
        }
    }

    /// Directives up to `}` (when `nested`) or the end of the file.
    fn block(&mut self, depth: &mut usize, nested: bool) -> Result<Vec<Directive>, ParseError> {
        let mut out = Vec::new();
        loop {
            let Some(t) = self.tokens.get(self.pos).cloned() else {
                if nested {
                    let line = self.tokens.last().map_or(1, |t| t.line);
                    return Err(self.err(line, "unexpected end of file, expecting \"}\""));
                }
                return Ok(out);
            };
            self.pos += 1;
            let name = match t.tok {
                Tok::Word(w) => w,
                Tok::Close if nested => return Ok(out),
                Tok::Close => return Err(self.err(t.line, "unexpected \"}\"")),
                Tok::Open => return Err(self.err(t.line, "unexpected \"{\"")),
                Tok::Semi => return Err(self.err(t.line, "unexpected \";\"")),
            };
            let mut args = Vec::new();
            let block = loop {
                let Some(a) = self.tokens.get(self.pos).cloned() else {
                    return Err(self.err(
                        t.line,
                        format!("directive \"{name}\" is not terminated by \";\""),
                    ));
                };
                self.pos += 1;
                match a.tok {
                    Tok::Word(w) => args.push(w),
                    Tok::Semi => break None,
                    Tok::Open => break Some(self.block(depth, true)?),
                    Tok::Close => return Err(self.err(a.line, "unexpected \"}\"")),
                }
            };
            if name == "include" && block.is_none() {
                let [pattern] = args.as_slice() else {
                    return Err(self.err(t.line, "include takes one argument"));
                };
                *depth += 1;
                if *depth > MAX_INCLUDE_DEPTH {
                    return Err(self.err(t.line, "includes nested too deeply"));
                }
                for path in self.glob(pattern, t.line)? {
                    out.extend(read(&path, &self.base, depth)?);
                }
                *depth -= 1;
                continue;
            }
            out.push(Directive {
                name,
                args,
                file: self.file.clone(),
                line: t.line,
                block,
            });
        }
    }

    /// The files an `include` pattern names.
    fn glob(&self, pattern: &str, line: usize) -> Result<Vec<PathBuf>, ParseError> {
        let full = self.base.join(pattern);
        let wild = |s: &str| s.contains(['*', '?', '[']);
        if !wild(pattern) {
            if !full.is_file() {
                return Err(self.err(line, format!("include {pattern}: no such file")));
            }
            return Ok(vec![full]);
        }
        let dir = full.parent().unwrap_or(Path::new("."));
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if wild(&dir.to_string_lossy()) {
            return Err(self.err(
                line,
                format!("include {pattern}: wildcards only in the file name"),
            ));
        }
        let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    !n.starts_with('.') && matches(name.as_bytes(), n.as_bytes())
                })
                .map(|e| e.path())
                .collect(),
            Err(_) => Vec::new(),
        };
        found.sort();
        Ok(found)
    }
}

/// Shell-style match of `*`, `?` and `[abc]` / `[a-z]` / `[!a]`.
fn matches(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| matches(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && matches(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|&c| c == b']') else {
                return s.first() == Some(&b'[') && matches(&p[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let mut set = &p[1..end];
            let negate = matches!(set.first(), Some(b'!' | b'^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && matches(&p[end + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && matches(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn glob_patterns() {
        assert!(matches(b"*.conf", b"a.conf"));
        assert!(!matches(b"*.conf", b"a.conf.bak"));
        assert!(matches(b"up?.[a-c]", b"up1.b"));
        assert!(!matches(b"up?.[!a-c]", b"up1.b"));
    }
}
