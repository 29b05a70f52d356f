//! IAM as the template deploys it (`--template` mode): each function calls DynamoDB and
//! the `@connections` API with credentials of its own, and every call is checked against
//! that function's role in the template before it goes through, so a grant the template
//! lacks fails here as it would on AWS, with the same error.
//!
//! - [`policy`]: the statements' evaluation (explicit deny, allow, default deny);
//! - [`Identities`]: each function's credentials and role;
//! - [`dynamodb::DynamoProxy`]: a DynamoDB endpoint that checks each call and forwards it;
//! - [`check_manage_connections`]: the check the `@connections` API makes.

mod connections;
pub mod dynamodb;
mod identity;
pub mod policy;

pub use connections::{check_manage_connections, ManageConnectionsDenied, MANAGE_CONNECTIONS};
pub use identity::{Identities, Identity};
pub use policy::Decision;

/// A call a role does not allow, as AWS words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION`.
    pub principal: String,
    /// The function's logical id, for the log.
    pub function: String,
    /// e.g. `dynamodb:PutItem`.
    pub action: String,
    /// The resource's ARN.
    pub resource: String,
    /// The `Deny` statement that matched, if one did (else nothing allowed it).
    pub denied_by: Option<String>,
}

impl Denial {
    /// Decides `action` on `resource` for `identity`: `None` when allowed.
    pub fn check(identity: &Identity, action: &str, resource: &str) -> Option<Denial> {
        let denied_by = match identity.decide(action, resource) {
            Decision::Allow => return None,
            Decision::ExplicitDeny(statement) => Some(statement),
            Decision::ImplicitDeny => None,
        };
        let denial = Denial {
            principal: identity.principal_arn(),
            function: identity.function.clone(),
            action: action.to_string(),
            resource: resource.to_string(),
            denied_by,
        };
        tracing::warn!(
            target: "webchat_local::iam",
            function = %denial.function,
            action = %denial.action,
            resource = %denial.resource,
            "AccessDenied: {} may not {} on {} ({})",
            denial.function,
            denial.action,
            denial.resource,
            denial.denied_by.as_deref().map_or_else(
                || "no statement of its role allows it".to_string(),
                |s| format!("denied by {s}")
            ),
        );
        Some(denial)
    }

    /// `User: … is not authorized to perform: … on resource: …`, with the reason AWS
    /// adds to identity-based denials.
    pub fn message(&self) -> String {
        let reason = match &self.denied_by {
            Some(_) => "with an explicit deny in an identity-based policy".to_string(),
            None => format!(
                "because no identity-based policy allows the {} action",
                self.action
            ),
        };
        format!("{} {reason}", self.message_without_reason())
    }

    /// The message without its reason, as API Gateway words its denials.
    pub fn message_without_reason(&self) -> String {
        format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            self.principal, self.action, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_read_as_aws_words_them() {
        let mut denial = Denial {
            principal: "arn:aws:sts::123456789012:assumed-role/R/F".into(),
            function: "F".into(),
            action: "dynamodb:PutItem".into(),
            resource: "arn:aws:dynamodb:us-east-1:123456789012:table/T".into(),
            denied_by: None,
        };
        assert_eq!(
            denial.message(),
            "User: arn:aws:sts::123456789012:assumed-role/R/F is not authorized to perform: \
             dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/T \
             because no identity-based policy allows the dynamodb:PutItem action"
        );
        denial.denied_by = Some("Role/p/#0".into());
        assert!(denial
            .message()
            .ends_with("table/T with an explicit deny in an identity-based policy"));
    }
}
