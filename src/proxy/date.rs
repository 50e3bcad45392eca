//! The `Date` field swarmgate adds to a response that has none (RFC 9110 §6.6.1), on both
//! protocols: formatted at most once a second per thread.

use http::HeaderValue;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The current `Date` value (a cheap clone of the cached one).
pub fn now() -> HeaderValue {
    with(HeaderValue::clone)
}

/// Calls `f` with the current `Date` value, borrowed from the cache.
pub fn with<R>(f: impl FnOnce(&HeaderValue) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<(u64, HeaderValue)> =
            const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let formatted = bytes::Bytes::from(httpdate::fmt_http_date(now));
            // An HTTP date is visible ASCII; the fallback is never taken.
            let v = HeaderValue::from_maybe_shared(formatted)
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            *c = (secs, v);
        }
        f(&c.1)
    })
}
