//! Routes match (listener, host, path): `routes[].listen` keeps a route to one listener, so one
//! swarmgate serves Kuscia's ingress port and its "case 3" egress port to a partner.

mod common;
use common::*;

#[tokio::test]
async fn routes_per_listener() {
    let replica = named("replica").await;
    let partner = named("partner").await;
    let (ingress, egress) = (free_port(), free_port());
    let yaml = format!(
        "listen: ['{ingress}', '{egress}']\n\
         upstreams:\n  replicas:\n    servers: [{{address: '{}'}}]\n  partner:\n    servers: [{{address: '{}'}}]\n\
         routes:\n\
         \x20 - {{listen: '{egress}', upstream: partner}}\n\
         \x20 - {{listen: '{ingress}', path_prefix: /only-ingress, upstream: replicas}}\n\
         \x20 - {{path_prefix: /, host: both.local, upstream: replicas}}\n",
        replica.addr, partner.addr
    );
    let p = proxy(&yaml).await;
    let bound = p.app.bound().await.proxy;
    assert_eq!(bound, vec![ingress, egress]);

    // The egress listener: everything to the partner, whatever the path or host.
    let (s, h, b) = get(egress, "/only-ingress/x").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"partner"[..]), "{h:?}");
    // The ingress listener: its own route; a path no ingress route matches is 404, not the
    // egress listener's catch-all.
    let (s, _, b) = get(ingress, "/only-ingress/x").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"replica"[..]));
    let (s, _, _) = get(ingress, "/elsewhere").await;
    assert_eq!(s.as_u16(), 404);
    assert_eq!(partner.requests(), 1);

    // A route without `listen` serves every listener (here on the ingress one, because the
    // egress catch-all comes first on the egress listener).
    let mut c = Conn::open(ingress).await;
    let req = hyper::Request::get("/elsewhere")
        .header("host", "both.local:8080")
        .body(empty())
        .unwrap();
    let (s, _, b) = collect(c.send(req).await.unwrap()).await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"replica"[..]));
}

#[test]
fn route_listen_must_be_a_listener() {
    let e = match swarmgate::config::parse_config(
        "listen: ['127.0.0.1:8080']\nupstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\nroutes:\n  - upstream: a\n    listen: '127.0.0.1:8081'\n",
    ) {
        Ok(_) => panic!("accepted a route on a listener that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("routes[0].listen"), "{e}");
    assert!(e.contains("line 7"), "{e}");
    assert!(
        e.contains("not one of the top-level listen addresses"),
        "{e}"
    );
}

#[test]
fn route_needs_a_target() {
    let e = match swarmgate::config::parse_config(
        "upstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\nroutes:\n  - path_prefix: /x\n",
    ) {
        Ok(_) => panic!("accepted a route without a target"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("routes[0]") && e.contains("needs a target"),
        "{e}"
    );
    assert!(e.contains("line 5"), "{e}");
}

/// `path`: an exact match (nginx `location = /x`), tried in order with the prefixes.
#[tokio::test]
async fn exact_path_route() {
    let exact = named("exact").await;
    let rest = named("rest").await;
    let p = proxy(&format!(
        "upstreams:\n  exact:\n    servers: [{{address: '{}'}}]\n  rest:\n    servers: [{{address: '{}'}}]\n\
         routes:\n  - {{path: /healthz, upstream: exact}}\n  - {{path_prefix: /, upstream: rest}}\n",
        exact.addr, rest.addr
    ))
    .await;
    for (path, want) in [
        ("/healthz", "exact"),
        ("/healthz?probe=1", "exact"),
        ("/healthz/x", "rest"),
        ("/healthzz", "rest"),
    ] {
        let (s, _, b) = get(p.addr, path).await;
        assert_eq!((s.as_u16(), &b[..]), (200, want.as_bytes()), "{path}");
    }
    let e = match swarmgate::config::parse_config(
        "upstreams:\n  a:\n    servers: [{address: 127.0.0.1:1}]\nroutes:\n  - {path: /x, path_prefix: /x, upstream: a}\n",
    ) {
        Ok(_) => panic!("accepted path and path_prefix together"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("routes[0].path"), "{e}");
}
