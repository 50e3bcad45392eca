//! `Transfer-Encoding: chunked` (RFC 9112 §7.1): an incremental decoder that hands out data
//! without copying (split off the read buffer) and the trailer section as a `HeaderMap`.

use super::ParseError;
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

/// Longest chunk-size line, extensions included (hyper allows more extension bytes in total,
/// but no legitimate sender needs a longer line).
const MAX_LINE: usize = 4096;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 << 10;
const MAX_TRAILER_FIELDS: usize = 64;

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body is complete (the last chunk and the trailer section were consumed).
    End,
    /// The buffer holds no complete next element: read more.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the next element from the front of `buf`, consuming what it used.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line_end) = find_crlf(buf, MAX_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&buf[..line_end])?;
                    buf.advance(line_end + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(rem) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(rem).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = rem - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ParseError::Chunk("data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = State::Done;
                        return Ok(Decoded::End);
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
                    match httparse::parse_headers(buf, &mut fields)? {
                        httparse::Status::Partial => {
                            if buf.len() > MAX_TRAILERS {
                                return Err(ParseError::TooLarge);
                            }
                            return Ok(Decoded::NeedMore);
                        }
                        httparse::Status::Complete((n, fields)) => {
                            // httparse takes a bare LF as a line end; a chunked body's
                            // trailer section may not (hyper refuses it too).
                            if buf[..n]
                                .iter()
                                .enumerate()
                                .any(|(i, &b)| b == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
                            {
                                return Err(ParseError::Chunk("bare LF in trailers"));
                            }
                            let mut map = HeaderMap::with_capacity(fields.len());
                            for f in fields {
                                let (name, value) = super::field(f)?;
                                map.append(name, value);
                            }
                            buf.advance(n);
                            self.state = State::Done;
                            return Ok(if map.is_empty() {
                                Decoded::End
                            } else {
                                Decoded::Trailers(map)
                            });
                        }
                    }
                }
                State::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// The offset of the CRLF ending the line at the front of `buf`; a bare LF or CR is an error.
fn find_crlf(buf: &[u8], max: usize) -> Result<Option<usize>, ParseError> {
    for (i, &b) in buf.iter().enumerate().take(max) {
        match b {
            b'\r' => {
                return match buf.get(i + 1) {
                    Some(b'\n') => Ok(Some(i)),
                    Some(_) => Err(ParseError::Chunk("bare CR")),
                    None => Ok(None),
                }
            }
            b'\n' => return Err(ParseError::Chunk("bare LF")),
            _ => {}
        }
    }
    if buf.len() >= max {
        return Err(ParseError::Chunk("size line too long"));
    }
    Ok(None)
}

/// `chunk-size [ chunk-ext ]`: hex digits, optional whitespace, then nothing or `;` extensions
/// (which are ignored, but may not hold control characters).
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ParseError::Chunk("no size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0);
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(ParseError::Chunk("size overflows"))?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    match rest.first() {
        None => Ok(size),
        Some(b';') if rest.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)) => Ok(size),
        Some(_) => Err(ParseError::Chunk("bad size line")),
    }
}

/// The chunk-size line for a chunk of `len` bytes.
pub fn encode_size(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// Ends a chunk's data.
pub const CRLF: &[u8] = b"\r\n";
/// The last chunk of a body without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), ParseError> {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        let mut trailers = None;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((out, trailers)),
                Decoded::NeedMore => return Err(ParseError::Chunk("incomplete")),
            }
        }
    }

    #[test]
    fn decodes_sizes_extensions_and_trailers() {
        let (b, t) = all(b"5\r\nhello\r\n1 ; x=y\r\n!\r\nA\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(b, b"hello!0123456789");
        assert!(t.is_none());
        let (b, t) = all(b"2\r\nhi\r\n0\r\ngrpc-status: 0\r\n\r\n").unwrap();
        assert_eq!(b, b"hi");
        assert_eq!(t.unwrap()["grpc-status"], "0");
    }

    #[test]
    fn byte_at_a_time_gives_the_same_body() {
        let input = b"5\r\nhello\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n";
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf).unwrap() {
                    Decoded::Data(x) => out.extend_from_slice(&x),
                    Decoded::NeedMore | Decoded::End => break,
                    Decoded::Trailers(_) => {}
                }
            }
        }
        assert!(d.is_done());
        assert_eq!(out, b"helloabc");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"zz\r\nmore\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"fffffffffffffffff\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\rhello\r\n",
            b"0\r\nbad name: x\r\n\r\n",
            b"0\r\n\n",
            b"0\x0c\r\n\r\n",
            b"0\r\nx-t: 1\n\r\n",
        ] {
            assert!(all(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
