//! Who calls: each function of the template runs with credentials of its own, as Lambda
//! gives each function its role's temporary credentials, so a call can be checked against
//! that function's role and no other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use sha2::{Digest, Sha256};
use webchat_templates::deployment::{Deployment, FunctionSpec, LocalValues};

use super::policy::{Decision, Policy};
use crate::sigv4::{self, AccessKey, Refusal};

/// One function's identity: its role's name and statements, and its credentials.
#[derive(Debug)]
pub struct Identity {
    /// The function's logical id.
    pub function: String,
    /// The function's name (the session name of its assumed role, as on Lambda).
    pub function_name: String,
    /// Its role's name.
    pub role_name: String,
    /// What it signs with (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN` in its environment).
    pub key: AccessKey,
    /// Its role's statements.
    pub policy: Policy,
    account_id: String,
}

impl Identity {
    /// The identity as AWS names it in a denial:
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION`.
    pub fn principal_arn(&self) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{}/{}",
            self.account_id, self.role_name, self.function_name
        )
    }

    /// The credentials as Lambda puts them in the function's environment.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID", self.key.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.key.secret_access_key.clone()),
        ];
        if let Some(token) = &self.key.session_token {
            vars.push(("AWS_SESSION_TOKEN", token.clone()));
        }
        vars
    }

    /// Decides `action` on `resource` by its role's statements.
    pub fn decide(&self, action: &str, resource: &str) -> Decision {
        self.policy.decide(action, resource)
    }
}

/// Every function's identity, found by access key.
#[derive(Debug)]
pub struct Identities {
    /// The region signatures must be scoped to and ARNs name.
    pub region: String,
    /// The account ARNs name.
    pub account_id: String,
    /// `arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE`, what `@connections` resources
    /// start with.
    pub execute_api_arn: String,
    by_key: HashMap<String, Arc<Identity>>,
    by_function: BTreeMap<String, Arc<Identity>>,
}

impl Identities {
    /// An identity for each function of `deployment`, with its role's statements.
    pub fn from_deployment(deployment: &Deployment, local: &LocalValues) -> Identities {
        let mut by_key = HashMap::new();
        let mut by_function = BTreeMap::new();
        for function in deployment.functions.values() {
            let identity = Arc::new(Identity {
                function: function.logical_id.clone(),
                function_name: function.function_name.clone(),
                role_name: function.role_name.clone(),
                key: key_for(function),
                policy: Policy::new(&function.statements),
                account_id: local.account_id.clone(),
            });
            by_key.insert(identity.key.access_key_id.clone(), Arc::clone(&identity));
            by_function.insert(function.logical_id.clone(), identity);
        }
        Identities {
            region: local.region.clone(),
            account_id: local.account_id.clone(),
            execute_api_arn: deployment.api.execute_api_arn(local),
            by_key,
            by_function,
        }
    }

    /// The identity of the function with this logical id.
    pub fn for_function(&self, logical_id: &str) -> Option<&Arc<Identity>> {
        self.by_function.get(logical_id)
    }

    /// The identity this access key id belongs to.
    pub fn by_access_key(&self, access_key_id: &str) -> Option<&Arc<Identity>> {
        self.by_key.get(access_key_id)
    }

    /// Checks the request's signature (for `service` and this region) with the key of
    /// the identity it names, and its session token, as AWS checks temporary credentials.
    pub fn verify(
        &self,
        request: &sigv4::Request<'_>,
        service: &str,
        now: SystemTime,
    ) -> Result<Arc<Identity>, Refusal> {
        let key_id = sigv4::access_key_id(request.headers)?;
        let identity = self.by_access_key(key_id).ok_or(Refusal::UnknownKey)?;
        let token = request
            .headers
            .get("x-amz-security-token")
            .and_then(|t| t.to_str().ok());
        if token != identity.key.session_token.as_deref() {
            return Err(Refusal::UnknownKey);
        }
        sigv4::verify_for(request, &identity.key, &self.region, service, now)?;
        Ok(Arc::clone(identity))
    }
}

/// A function's credentials: derived from its name, so they stay the same from run to
/// run, and only ever accepted by this machine's webchat-local.
fn key_for(function: &FunctionSpec) -> AccessKey {
    // Temporary credentials' ids start ASIA; 16 more characters of A-Z and 2-7.
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = |what: &str| {
        Sha256::new()
            .chain_update("webchat-local function credentials\0")
            .chain_update(what)
            .chain_update("\0")
            .chain_update(&function.function_name)
            .finalize()
    };
    let id: String = digest("access key id")
        .iter()
        .take(16)
        .map(|b| char::from(BASE32[usize::from(b % 32)]))
        .collect();
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    AccessKey {
        access_key_id: format!("ASIA{id}"),
        secret_access_key: engine.encode(&digest("secret")[..30]),
        session_token: Some(engine.encode(digest("session token"))),
    }
}
