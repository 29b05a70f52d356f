//! What the verifier trusts: one issuer, one audience, and where its keys are.

use std::time::Duration;

/// Environment variable for [`AuthConfig::issuer`].
pub const ISSUER_VAR: &str = "AUTH_ISSUER";
/// Environment variable for [`AuthConfig::audience`].
pub const AUDIENCE_VAR: &str = "AUTH_AUDIENCE";
/// Environment variable for [`AuthConfig::jwks_url`]; unset means discover it from the issuer.
pub const JWKS_URL_VAR: &str = "AUTH_JWKS_URL";

/// The verifier's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The `iss` every token must carry, e.g.
    /// `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123`. Its
    /// `/.well-known/openid-configuration` names the JWKS unless `jwks_url` does.
    pub issuer: String,
    /// The app client id: ID tokens carry it as `aud`, Cognito access tokens as `client_id`.
    pub audience: String,
    /// The issuer's JWKS, when it should not be discovered.
    pub jwks_url: Option<String>,
    /// At most one JWKS fetch per this interval for keys it does not know (a new `kid`
    /// after a rotation, or a forged one).
    pub refetch_interval: Duration,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// Why the verifier's settings are unusable; nothing is verified with them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A URL the verifier would fetch keys from is not https (or loopback http), or
    /// carries a query or fragment.
    #[error("{var} must be an https URL (http only for localhost or 127.0.0.1), without query or fragment; got {value:?}")]
    BadUrl {
        /// The variable (or setting) that holds the URL.
        var: &'static str,
        /// The URL as given.
        value: String,
    },
    /// A variable is set but empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

impl AuthConfig {
    /// How often, at most, unknown keys send the verifier back to the JWKS.
    pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_mins(1);
    /// Clock skew allowed when nothing else is configured.
    pub const DEFAULT_LEEWAY_SECS: u64 = 60;

    /// Checks the settings; the issuer and JWKS URL must be https (or loopback http).
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_url: Option<&str>,
    ) -> Result<AuthConfig, ConfigError> {
        let issuer = check_url(ISSUER_VAR, issuer)?;
        let audience = audience.trim();
        if audience.is_empty() {
            return Err(ConfigError::Empty(AUDIENCE_VAR));
        }
        let jwks_url = jwks_url
            .map(|url| check_url(JWKS_URL_VAR, url))
            .transpose()?;
        Ok(AuthConfig {
            issuer,
            audience: audience.to_string(),
            jwks_url,
            refetch_interval: Self::DEFAULT_REFETCH_INTERVAL,
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
        })
    }

    /// `AUTH_ISSUER`, `AUTH_AUDIENCE` and optional `AUTH_JWKS_URL`.
    pub fn from_env() -> Result<AuthConfig, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// As [`AuthConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
        let issuer = lookup(ISSUER_VAR).ok_or(ConfigError::Missing(ISSUER_VAR))?;
        let audience = lookup(AUDIENCE_VAR).ok_or(ConfigError::Missing(AUDIENCE_VAR))?;
        let jwks_url = lookup(JWKS_URL_VAR).filter(|v| !v.trim().is_empty());
        Self::new(&issuer, &audience, jwks_url.as_deref())
    }

    /// Where discovery looks: `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// https anywhere; http only to this machine (the development issuer).
pub(crate) fn url_allowed(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    if url.contains('#') || uri.query().is_some() {
        return false;
    }
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1"),
        _ => false,
    }
}

fn check_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::Empty(var));
    }
    if !url_allowed(value) {
        return Err(ConfigError::BadUrl {
            var,
            value: value.to_string(),
        });
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |var| map.get(var).cloned()
    }

    #[test]
    fn a_missing_or_bad_setting_names_its_variable() {
        let err = AuthConfig::from_lookup(lookup(&[(AUDIENCE_VAR, "client")])).unwrap_err();
        assert!(err.to_string().contains("AUTH_ISSUER"), "{err}");
        let err =
            AuthConfig::from_lookup(lookup(&[(ISSUER_VAR, "https://issuer.example")])).unwrap_err();
        assert!(err.to_string().contains("AUTH_AUDIENCE"), "{err}");
        let err = AuthConfig::from_lookup(lookup(&[
            (ISSUER_VAR, "http://issuer.example"),
            (AUDIENCE_VAR, "client"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("AUTH_ISSUER"), "{err}");
        let err = AuthConfig::from_lookup(lookup(&[
            (ISSUER_VAR, "https://issuer.example"),
            (AUDIENCE_VAR, "client"),
            (JWKS_URL_VAR, "ftp://keys"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("AUTH_JWKS_URL"), "{err}");
        let err = AuthConfig::from_lookup(lookup(&[
            (ISSUER_VAR, "https://issuer.example"),
            (AUDIENCE_VAR, " "),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("AUTH_AUDIENCE"), "{err}");
    }

    #[test]
    fn https_issuers_and_loopback_http_are_accepted() {
        let config = AuthConfig::from_lookup(lookup(&[
            (
                ISSUER_VAR,
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
            ),
            (AUDIENCE_VAR, "client"),
        ]))
        .unwrap();
        assert_eq!(
            config.discovery_url(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/openid-configuration"
        );
        assert!(AuthConfig::new("http://127.0.0.1:8080", "webchat-local", None).is_ok());
        assert!(AuthConfig::new("http://localhost:8080", "webchat-local", None).is_ok());
    }
}
