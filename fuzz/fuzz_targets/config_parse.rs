//! `parse_config` on arbitrary text: never panics; an accepted config has sane values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = swarmgate::config::parse_config(text) {
        assert!(!cfg.listen.is_empty());
        assert!(cfg.client.max_header_size >= 1024);
        assert!((1..=10_000).contains(&cfg.client.max_headers));
        // Every duration can be added to an Instant (deadlines never overflow).
        let now = std::time::Instant::now();
        for d in [
            cfg.client.header_timeout,
            cfg.client.body_timeout,
            cfg.client.keepalive_timeout,
            cfg.shutdown_timeout,
        ] {
            assert!(now.checked_add(d).is_some());
        }
        for u in &cfg.upstreams {
            assert!(!u.servers.is_empty() || u.docker.is_some());
            for d in [
                u.read_timeout,
                u.send_timeout,
                u.connect_timeout,
                u.keepalive_timeout,
            ] {
                assert!(now.checked_add(d).is_some());
            }
            assert!(u.max_response_header_size >= 1024);
        }
        for r in &cfg.routes {
            if let swarmgate::config::RouteTarget::Upstream(name) = &r.target {
                assert!(cfg.upstream(name).is_some());
            }
        }
    }
});
