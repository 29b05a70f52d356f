//! How a gateway runs: what `webchat-local`'s flags and the tests choose.

use crate::dev_issuer;
use crate::sigv4::AccessKey;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use webchat_backend::{Limits, TableNames};

/// The `DynamoDB` tables `--dynamodb-endpoint` uses unless told otherwise.
pub const DEFAULT_CONNECTIONS_TABLE: &str = "webchat-connections";
/// The `Names` table: who holds each name.
pub const DEFAULT_NAMES_TABLE: &str = "webchat-names";
/// The `Members` table: who is in each room.
pub const DEFAULT_MEMBERS_TABLE: &str = "webchat-members";
/// The `Messages` table: what each room and conversation keeps.
pub const DEFAULT_MESSAGES_TABLE: &str = "webchat-messages";

/// The region the gateway claims when none is given, as the AWS CLI's default.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gateway listens (port 0 picks a free one).
    pub addr: SocketAddr,
    /// The stage: the last path segment of the WebSocket URL, as on API Gateway.
    pub stage: String,
    /// Serve this directory (the built UI) at `/`, with a generated `/config.json`.
    pub static_dir: Option<PathBuf>,
    /// Keep connections in `DynamoDB` at this endpoint instead of in memory.
    pub dynamodb_endpoint: Option<String>,
    /// The table names, with `dynamodb_endpoint`.
    pub tables: TableNames,
    /// A connection that sends nothing for this long is closed (1001), as API Gateway does.
    pub idle_timeout: Duration,
    /// Every connection is closed (1001) after this long, as API Gateway does.
    pub max_lifetime: Duration,
    /// The region management API signatures must be scoped to.
    pub region: String,
    /// Who may use the `@connections` API.
    pub management_auth: ManagementAuth,
    /// IAM as the template deploys it (`--template`): `@connections` calls are signed by
    /// the functions' own keys and checked against their roles, instead of
    /// `management_auth`'s one key.
    pub management_iam: Option<std::sync::Arc<crate::iam::Identities>>,
    /// When false, closed sockets never reach `$disconnect`: what happens on AWS when
    /// the event is lost, leaving stale rows for the next fan-out to find gone (410).
    pub deliver_disconnects: bool,
    /// How many frames each connection may send.
    pub limits: Limits,
    /// Whether `$connect` needs a signed-in token (`?token=`).
    pub auth: Auth,
    /// How long the development issuer's tokens last (`--auth dev`); short ones let a
    /// test watch the UI renew them.
    pub auth_token_lifetime: Duration,
    /// `--template`: the SAM template's functions run the routes, not this process.
    pub template: Option<crate::template_mode::TemplateOptions>,
    /// Rooms with more members than this are pushed to by the fan-out workers, one job
    /// per shard, instead of by the handler (`FANOUT_INLINE` on AWS).
    pub fanout_inline: usize,
    /// Members per fan-out job ([`webchat_backend::store::SHARD_SIZE`] unless a test
    /// wants many shards of a small room).
    pub fanout_shard_size: usize,
}

/// Sign-in on `$connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may connect, as before sign-in existed.
    #[default]
    Off,
    /// The development issuer ([`dev_issuer`]) serves sign-in on the gateway's port,
    /// and `$connect` runs the authorizer (`webchat-authorizer`) against it first.
    Dev {
        /// The `aud` its ID tokens carry and the authorizer expects.
        client_id: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            stage: webchat_shared_types::DEFAULT_STAGE.to_string(),
            static_dir: None,
            dynamodb_endpoint: None,
            tables: TableNames {
                connections: DEFAULT_CONNECTIONS_TABLE.to_string(),
                names: DEFAULT_NAMES_TABLE.to_string(),
                members: DEFAULT_MEMBERS_TABLE.to_string(),
                messages: DEFAULT_MESSAGES_TABLE.to_string(),
            },
            idle_timeout: Duration::from_secs(webchat_shared_types::IDLE_TIMEOUT_SECS),
            max_lifetime: Duration::from_secs(webchat_shared_types::MAX_CONNECTION_LIFETIME_SECS),
            deliver_disconnects: true,
            region: DEFAULT_REGION.to_string(),
            management_auth: ManagementAuth::SigV4(AccessKey::development()),
            management_iam: None,
            limits: Limits::DEFAULT,
            auth: Auth::Off,
            auth_token_lifetime: Duration::from_secs(dev_issuer::DEFAULT_TOKEN_LIFETIME_SECS),
            template: None,
            fanout_inline: webchat_backend::delivery::DEFAULT_FANOUT_INLINE,
            fanout_shard_size: webchat_backend::store::SHARD_SIZE,
        }
    }
}

/// How the `@connections` API authenticates callers.
#[derive(Debug, Clone)]
pub enum ManagementAuth {
    /// Every request must carry a valid `SigV4` signature by this key, as on AWS; the
    /// gateway's own handlers sign with it.
    SigV4(AccessKey),
    /// Anyone who reaches the port may post to and close any connection.
    Off,
}

impl ManagementAuth {
    /// The key the handlers sign their pushes with (any key, when nobody checks).
    pub(crate) fn signing_key(&self) -> AccessKey {
        match self {
            ManagementAuth::SigV4(key) => key.clone(),
            ManagementAuth::Off => AccessKey::development(),
        }
    }
}
