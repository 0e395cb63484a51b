//! Baseline for bench/turn-rps: an axum hello-world route on the same runtime shape as the
//! recorder's API (tokio, 2 worker threads). Usage: hello_axum <port>
use axum::routing::get;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8099);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = axum::Router::new().route("/hello", get(|| async { "hello" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}
