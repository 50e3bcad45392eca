//! Shared by the differential HTTP/1.1 targets (`#[path]`-included, not a target itself).

use bytes::{BufMut, BytesMut};
use swarmgate::h1::chunked::{Decoded, Decoder};

/// A whole chunked body from the front of `buf` (trailers dropped); `None` when it is malformed
/// or incomplete.
pub fn chunked_body(buf: &mut BytesMut) -> Option<Vec<u8>> {
    let mut d = Decoder::default();
    let mut out = Vec::new();
    loop {
        match d.decode(buf).ok()? {
            Decoded::Data(b) => out.put_slice(&b),
            Decoded::Trailers(_) => {}
            Decoded::End => return Some(out),
            Decoded::NeedMore => return None,
        }
    }
}

/// One current-thread runtime for every input.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The differential verdict: ours may not accept what hyper refuses, nor read it differently.
pub fn compare<T: PartialEq + std::fmt::Debug>(mine: T, theirs: Option<T>, input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let Some(theirs) = theirs else {
        panic!("ours accepts, hyper refuses: {mine:?} from {text:?}");
    };
    assert_eq!(mine, theirs, "ours and hyper differ for {text:?}");
}
