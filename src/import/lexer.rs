//! nginx configuration tokens: words (bare or quoted), `{`, `}` and `;`, each with its line.
//! `#` starts a comment to the end of the line outside quotes; `\` escapes the next character
//! inside quotes (`\"`, `\\`; `\n`, `\r`, `\t` as in nginx).

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A directive name or argument, unquoted.
    Word(String),
    Open,
    Close,
    Semi,
}

/// A token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

/// Splits `text` into tokens; an unterminated quote is an error naming its line.
pub fn tokenize(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut word = String::new();
    let mut word_line = 1;
    let flush = |word: &mut String, out: &mut Vec<Token>, at: usize| {
        if !word.is_empty() {
            out.push(Token {
                tok: Tok::Word(std::mem::take(word)),
                line: at,
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                flush(&mut word, &mut out, word_line);
                line += 1;
            }
            c if c.is_whitespace() => flush(&mut word, &mut out, word_line),
            '#' if word.is_empty() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '{' | '}' | ';' => {
                flush(&mut word, &mut out, word_line);
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    _ => Tok::Semi,
                };
                out.push(Token { tok, line });
            }
            '"' | '\'' if word.is_empty() => {
                let start = line;
                let mut s = String::new();
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some(e) => {
                                if e == '\n' {
                                    line += 1;
                                }
                                if e != c && e != '\\' {
                                    s.push('\\');
                                }
                                s.push(e);
                            }
                            None => break,
                        },
                        q if q == c => {
                            closed = true;
                            break;
                        }
                        q => {
                            if q == '\n' {
                                line += 1;
                            }
                            s.push(q);
                        }
                    }
                }
                if !closed {
                    return Err((start, "unterminated quoted string".into()));
                }
                out.push(Token {
                    tok: Tok::Word(s),
                    line: start,
                });
            }
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut out, word_line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_blocks_comments_quotes() {
        let t = tokenize("a b; # c {\nd \"x y\\\"\" { e 'f;g'; }\n").unwrap();
        let w = |s: &str, line| Token {
            tok: Tok::Word(s.into()),
            line,
        };
        let p = |tok, line| Token { tok, line };
        assert_eq!(
            t,
            vec![
                w("a", 1),
                w("b", 1),
                p(Tok::Semi, 1),
                w("d", 2),
                w("x y\"", 2),
                p(Tok::Open, 2),
                w("e", 2),
                w("f;g", 2),
                p(Tok::Semi, 2),
                p(Tok::Close, 2),
            ]
        );
        assert!(tokenize("a \"b;\n").is_err());
    }
}
