//! Header rules on arbitrary header maps: never panic; afterwards no hop-by-hop field and no
//! field named in the original `Connection` survives (except `Upgrade` + `Connection: upgrade`
//! on an upgrade), at most one `Content-Length`, never beside `Transfer-Encoding`, and every
//! other field is kept untouched.
#![no_main]
use arbitrary::Arbitrary;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use swarmgate::proxy::headers;

/// Names the rules care about, so that the fuzzer hits them often.
const NAMES: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "x-forwarded-for",
    "x-real-ip",
    "x-forwarded-proto",
    "expect",
    "x-a",
    "x-b",
];
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    fields: Vec<(Name, Vec<u8>)>,
    /// Tokens for an extra Connection field: known names by index, or raw bytes.
    connection: Vec<Name>,
    upgrade: bool,
    direction: u8,
}

fn name(n: &Name) -> Option<HeaderName> {
    match n {
        Name::Known(i) => HeaderName::from_bytes(NAMES[*i as usize % NAMES.len()].as_bytes()).ok(),
        Name::Raw(b) => HeaderName::from_bytes(b).ok(),
    }
}

fn tokens(h: &HeaderMap) -> Vec<Vec<u8>> {
    h.get_all("connection")
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fuzz_target!(|input: Input| {
    let mut h = HeaderMap::new();
    for (n, v) in &input.fields {
        if let (Some(n), Ok(v)) = (name(n), HeaderValue::from_bytes(v)) {
            h.append(n, v);
        }
    }
    if !input.connection.is_empty() {
        let mut v = Vec::new();
        for (i, t) in input.connection.iter().enumerate() {
            if i > 0 {
                v.extend_from_slice(b", ");
            }
            match t {
                Name::Known(i) => v.extend_from_slice(NAMES[*i as usize % NAMES.len()].as_bytes()),
                Name::Raw(b) => v.extend_from_slice(b),
            }
        }
        if let Ok(v) = HeaderValue::from_bytes(&v) {
            h.append("connection", v);
        }
    }
    let before = h.clone();
    let named = tokens(&before);
    let had_upgrade = before.contains_key("upgrade");
    let keep_upgrade = input.upgrade;
    let added: &[&str] = match input.direction % 3 {
        0 => {
            headers::strip_hop_by_hop(&mut h, keep_upgrade);
            &[]
        }
        1 => {
            headers::to_upstream(
                &mut h,
                &headers::ip_value([10, 0, 0, 1].into()),
                "http",
                keep_upgrade,
                false, // an HTTP/1.1 request: TE stays hop-by-hop
            );
            assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
            assert_eq!(h["x-real-ip"], "10.0.0.1");
            assert!(!h.contains_key("expect"));
            &[
                "x-forwarded-for",
                "x-real-ip",
                "x-forwarded-proto",
                "expect",
            ]
        }
        _ => {
            headers::to_client(&mut h, keep_upgrade);
            &[]
        }
    };
    let upgraded = keep_upgrade && had_upgrade;
    for hop in HOP {
        let allowed = upgraded && (*hop == "upgrade" || *hop == "connection");
        assert!(allowed || !h.contains_key(*hop), "{hop} survived: {h:?}");
    }
    if upgraded {
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h.get_all("upgrade").iter().count(), 1);
    }
    for t in &named {
        let Ok(n) = HeaderName::from_bytes(t) else {
            continue;
        };
        let allowed =
            (upgraded && (n == "upgrade" || n == "connection")) || added.contains(&n.as_str());
        assert!(
            allowed || !h.contains_key(&n),
            "{n} named in Connection survived: {h:?}"
        );
    }
    if input.direction % 3 != 0 {
        // to_upstream / to_client also normalise framing (strip_hop_by_hop alone does not).
        assert!(h.get_all("content-length").iter().count() <= 1, "{h:?}");
        assert!(!(h.contains_key("content-length") && h.contains_key("transfer-encoding")));
    }
    // Everything else is untouched, in order.
    for (n, _) in before.iter() {
        let s = n.as_str();
        let removed = HOP.contains(&s)
            || s == "content-length"
            || added.contains(&s)
            || named.iter().any(|t| t.as_slice() == s.as_bytes());
        if !removed {
            let a: Vec<_> = before.get_all(n).iter().collect();
            let b: Vec<_> = h.get_all(n).iter().collect();
            assert_eq!(a, b, "{n} changed");
        }
    }
});
