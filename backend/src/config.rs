//! What is wrong with a setting (an environment variable, a flag): one error for every
//! reader of the backend's configuration, naming the setting and saying what is right.

/// A setting that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("environment variable {variable} is not set; set it to {expected}")]
    Missing {
        /// The variable (or flag) that is missing.
        variable: String,
        /// What the setting holds.
        expected: &'static str,
    },
    /// A setting is present but unusable.
    #[error("{variable}={value:?} is {reason}")]
    Invalid {
        /// The variable (or flag) that holds it.
        variable: String,
        /// The value as given.
        value: String,
        /// What is wrong with the value, and what would be right.
        reason: String,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] for `variable=value`, saying why in `reason`.
    pub fn invalid(variable: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            variable: variable.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The environment variable `variable`, which must be set to `expected`.
pub fn required_var(variable: &str, expected: &'static str) -> Result<String, ConfigError> {
    match std::env::var(variable) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing {
            variable: variable.to_string(),
            expected,
        }),
        Err(std::env::VarError::NotUnicode(value)) => Err(ConfigError::invalid(
            variable,
            &value.to_string_lossy(),
            format!("not Unicode; set it to {expected}"),
        )),
    }
}
