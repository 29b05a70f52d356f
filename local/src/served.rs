//! A router served on a port of its own: the endpoints template mode gives the functions
//! (the checking DynamoDB endpoint, SQS). It stops when dropped.

use axum::Router;
use std::net::SocketAddr;

/// A router being served.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serves `router` on `addr` (port 0 picks a free one); `what` names it in the log
    /// if serving stops.
    pub async fn start(
        router: Router,
        addr: SocketAddr,
        what: &'static str,
    ) -> std::io::Result<Served> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "{what} stopped");
            }
        });
        Ok(Served { addr, task })
    }

    /// Its URL, as the functions are given it (`AWS_ENDPOINT_URL_…`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}
