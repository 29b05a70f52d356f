//! IAM policy evaluation over a role's identity-based statements, as AWS decides a
//! request: an explicit `Deny` that matches wins, else an `Allow` that matches grants,
//! else the request is denied by default.
//!
//! Written here rather than taken from a crate: no maintained Rust crate evaluates IAM
//! policy documents, and the part these templates need is small. Matching uses
//! `wildmatch` (`*` any run of characters, `?` one), case-insensitively for actions and
//! case-sensitively for resources, as IAM compares them. `NotAction` and `NotResource`
//! are honoured. `Condition` blocks and policy variables are not evaluated: the
//! templates' role policies use neither (the resolver reads no conditions into a
//! statement), and a statement is applied as if its conditions held.

use webchat_templates::IamStatement;
use wildmatch::WildMatch;

/// How a request was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A `Deny` statement matches it (its location, e.g. `Role/policy/Sid`).
    ExplicitDeny(String),
    /// No statement allows it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        *self == Decision::Allow
    }
}

struct Compiled {
    location: String,
    allow: bool,
    actions: Vec<WildMatch>,
    not_action: bool,
    resources: Vec<WildMatch>,
    not_resource: bool,
}

impl Compiled {
    fn matches(&self, action: &str, resource: &str) -> bool {
        let action_listed = self.actions.iter().any(|p| p.matches(action));
        let resource_listed = self.resources.iter().any(|p| p.matches(resource));
        action_listed != self.not_action && resource_listed != self.not_resource
    }
}

/// A role's statements, ready to decide requests.
pub struct Policy {
    statements: Vec<Compiled>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("statements", &self.statements.len())
            .finish()
    }
}

impl Policy {
    /// Compiles `statements` (resources already resolved to strings, as the resolver
    /// gives them; anything else never matches).
    pub fn new(statements: &[IamStatement]) -> Policy {
        Policy {
            statements: statements
                .iter()
                .map(|s| Compiled {
                    location: s.location(),
                    allow: s.is_allow(),
                    actions: s
                        .actions
                        .iter()
                        .map(|a| WildMatch::new_case_insensitive(a))
                        .collect(),
                    not_action: s.has_not_action,
                    resources: s
                        .resources
                        .iter()
                        .filter_map(|r| r.as_str())
                        .map(WildMatch::new)
                        .collect(),
                    not_resource: s.has_not_resource,
                })
                .collect(),
        }
    }

    /// Decides `action` (e.g. `dynamodb:PutItem`) on `resource` (an ARN).
    pub fn decide(&self, action: &str, resource: &str) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if !statement.matches(action, resource) {
                continue;
            }
            if !statement.allow {
                return Decision::ExplicitDeny(statement.location.clone());
            }
            allowed = true;
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn statement(effect: &str, actions: &[&str], resources: &[&str]) -> IamStatement {
        IamStatement {
            owner: "Role".into(),
            policy_name: Some("p".into()),
            sid: None,
            index: 0,
            effect: effect.into(),
            actions: actions.iter().map(ToString::to_string).collect(),
            resources: resources.iter().map(|r| json!(r)).collect::<Vec<Value>>(),
            has_not_action: false,
            has_not_resource: false,
            principal: None,
        }
    }

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/T";

    #[test]
    fn allow_deny_wildcards_and_defaults() {
        let policy = Policy::new(&[
            statement("Allow", &["dynamodb:PutItem", "dynamodb:Get*"], &[TABLE]),
            statement(
                "Allow",
                &["dynamodb:Query"],
                &["arn:aws:dynamodb:us-east-1:123456789012:table/T/index/*"],
            ),
            statement(
                "Allow",
                &["dynamodb:?eleteItem"],
                &["arn:aws:dynamodb:*:*:table/*"],
            ),
            statement("Deny", &["dynamodb:DeleteItem"], &["*/Locked"]),
        ]);
        assert!(policy.decide("dynamodb:PutItem", TABLE).is_allowed());
        // Action names are case-insensitive, resources are not.
        assert!(policy.decide("DynamoDB:putitem", TABLE).is_allowed());
        assert_eq!(
            policy.decide("dynamodb:PutItem", &TABLE.to_lowercase()),
            Decision::ImplicitDeny
        );
        assert!(policy.decide("dynamodb:GetItem", TABLE).is_allowed());
        assert!(policy.decide("dynamodb:BatchGetItem", TABLE) == Decision::ImplicitDeny);
        assert_eq!(
            policy.decide("dynamodb:Query", TABLE),
            Decision::ImplicitDeny
        );
        assert!(policy
            .decide("dynamodb:Query", &format!("{TABLE}/index/ByName"))
            .is_allowed());
        assert!(policy
            .decide(
                "dynamodb:DeleteItem",
                "arn:aws:dynamodb:eu-west-1:1:table/X"
            )
            .is_allowed());
        assert_eq!(
            policy.decide(
                "dynamodb:DeleteItem",
                "arn:aws:dynamodb:eu-west-1:1:table/Locked"
            ),
            Decision::ExplicitDeny("Role/p/#0".into())
        );
        assert_eq!(
            Policy::new(&[]).decide("dynamodb:GetItem", TABLE),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_action_and_not_resource_apply_to_everything_else() {
        let mut everything_but_delete = statement("Allow", &["dynamodb:DeleteItem"], &[TABLE]);
        everything_but_delete.has_not_action = true;
        let mut deny_elsewhere = statement("Deny", &["*"], &[TABLE]);
        deny_elsewhere.has_not_resource = true;
        let policy = Policy::new(&[everything_but_delete, deny_elsewhere]);
        assert!(policy.decide("dynamodb:PutItem", TABLE).is_allowed());
        assert_eq!(
            policy.decide("dynamodb:DeleteItem", TABLE),
            Decision::ImplicitDeny
        );
        assert!(matches!(
            policy.decide(
                "dynamodb:PutItem",
                "arn:aws:dynamodb:us-east-1:123456789012:table/U"
            ),
            Decision::ExplicitDeny(_)
        ));
    }
}
