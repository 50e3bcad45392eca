//! nginx-style durations (`500ms`, `3s`, `10m`, `1h30m`, bare number = seconds) and sizes
//! (`2m`, `512k`, `1g`, bare number = bytes), parsed during deserialisation so that a bad value
//! is reported with its key path and line by serde_yaml.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A duration written the nginx way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// A byte size written the nginx way (`k`, `m`, `g` are powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses `500ms`, `3s`, `10m`, `1h`, `2d`, `1h30m`, `1h 30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return bounded(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?} (expected e.g. 500ms, 3s, 10m, 1h)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?} is out of range"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" | "" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "w" => Duration::from_secs(n.saturating_mul(7 * 86_400)),
            _ => {
                return Err(format!(
                    "invalid duration unit {unit:?} in {s:?} (use ms, s, m, h, d, w)"
                ))
            }
        };
        total = total.saturating_add(part);
    }
    bounded(total).map_err(|e| format!("duration {s:?}: {e}"))
}

/// Every duration from a config, however written, passes here (deadlines are `Instant +
/// duration`, which must not overflow).
fn bounded(d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        return Err("out of range (at most 100 years)".into());
    }
    Ok(d)
}

/// Longest duration accepted: deadlines are computed as `Instant + duration`, which must not
/// overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses `2m`, `512k`, `1g`, `100` (bytes); suffixes are case-insensitive powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1u64 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1u64 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?} (expected e.g. 2m, 512k, 1g or a byte count)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is out of range"))
}

struct DurVisitor;
impl Visitor<'_> for DurVisitor {
    type Value = Dur;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as 500ms, 3s, 10m or a number of seconds")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
        bounded(Duration::from_secs(v))
            .map(Dur)
            .map_err(|e| E::custom(format!("duration {v}: {e}")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
        let v = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
        self.visit_u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
        Duration::try_from_secs_f64(v)
            .map_err(|_| format!("invalid duration {v}"))
            .and_then(bounded)
            .map(Dur)
            .map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
        parse_duration(v).map(Dur).map_err(E::custom)
    }
}
impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct SizeVisitor;
impl Visitor<'_> for SizeVisitor {
    type Value = Size;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as 2m, 512k, 1g or a number of bytes")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        Ok(Size(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        u64::try_from(v)
            .map(Size)
            .map_err(|_| E::custom("a size cannot be negative"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
        parse_size(v).map(Size).map_err(E::custom)
    }
}
impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
        // Deadlines are `Instant + duration`: absurd values are refused, not overflowed later.
        assert!(parse_duration("18446744073709551615").is_err());
        assert!(parse_duration("99999999999w").is_err());
        // The same bound when YAML hands over a number rather than a string (fuzz find).
        let num = |y: &str| serde_yaml::from_str::<Dur>(y).map(|d| d.0);
        assert!(num("11111111111111111111").is_err());
        assert!(num("1e300").is_err());
        assert_eq!(num("20").unwrap(), Duration::from_secs(20));
        assert_eq!(
            parse_duration("100y").err().map(|e| e.contains("unit")),
            Some(true)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2m"), Ok(2 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("2mb").is_err());
        assert!(parse_size("-1").is_err());
    }
}
