//! The gateway under test, in this process, on a free port.

use webchat_local::{Config, Running};

pub async fn start(config: Config) -> Running {
    webchat_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .expect("gateway starts")
}
