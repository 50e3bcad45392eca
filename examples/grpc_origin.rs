//! A gRPC origin for `scripts/bench-grpc.sh`: `grpc.health.v1.Health` on ADDR, answering
//! SERVING for the service "". Usage: `grpc_origin 127.0.0.1:PORT`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .ok_or("usage: grpc_origin ADDR")?
        .parse()?;
    let (_reporter, service) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(service)
        .serve(addr)
        .await?;
    Ok(())
}
