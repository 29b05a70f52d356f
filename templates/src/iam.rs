//! IAM policies as the templates hold them: inline policies of `AWS::IAM::Role`s and the
//! documents of `AWS::S3::BucketPolicy`s. Any other place a policy can hide is reported by
//! [`Template::opaque_policies`], so a grant is never missed silently.

use serde_json::Value;

use crate::intrinsic::{as_list, render, single_entry};
use crate::Template;

/// One statement of an IAM policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct IamStatement {
    /// Logical id of the resource that holds the policy (role, bucket policy).
    pub owner: String,
    /// `PolicyName` of an inline policy, when it has one.
    pub policy_name: Option<String>,
    /// `Sid`, when the statement has one.
    pub sid: Option<String>,
    /// Position within its policy document.
    pub index: usize,
    /// `Effect`: `Allow` or `Deny`.
    pub effect: String,
    /// `Action` (or `NotAction`, then `has_not_action`), one string each.
    pub actions: Vec<String>,
    /// `Resource` (or `NotResource`, then `has_not_resource`) as written.
    pub resources: Vec<Value>,
    /// Whether it is written with `NotAction` (grants everything but the list).
    pub has_not_action: bool,
    /// Whether it is written with `NotResource` (applies to everything but the list).
    pub has_not_resource: bool,
    /// `Principal` as written (resource policies only).
    pub principal: Option<Value>,
}

impl IamStatement {
    /// Whether it grants rather than denies.
    pub fn is_allow(&self) -> bool {
        self.effect == "Allow"
    }

    /// Whether it lists `action` (IAM action names are case-insensitive).
    pub fn has_action(&self, action: &str) -> bool {
        !self.has_not_action && self.actions.iter().any(|a| a.eq_ignore_ascii_case(action))
    }

    /// The resources, rendered with [`render`].
    pub fn rendered_resources(&self) -> Vec<String> {
        self.resources.iter().map(render).collect()
    }

    /// "owner/policy/sid-or-index", for messages.
    pub fn location(&self) -> String {
        let policy = self.policy_name.as_deref().unwrap_or("policy");
        match &self.sid {
            Some(sid) => format!("{}/{policy}/{sid}", self.owner),
            None => format!("{}/{policy}/#{}", self.owner, self.index),
        }
    }
}

/// The policy-holding properties this crate reads, by resource type; the same property
/// anywhere else is opaque.
const READ: [(&str, &str); 2] = [
    ("AWS::IAM::Role", "Policies"),
    ("AWS::S3::BucketPolicy", "PolicyDocument"),
];

/// Properties named like a policy that grant nothing: a Cognito user pool's `Policies` is
/// its password and sign-in policy.
const NOT_IAM: [(&str, &str); 1] = [("AWS::Cognito::UserPool", "Policies")];

impl Template {
    /// Every statement of the role policies and bucket policies. Trust policies
    /// (`AssumeRolePolicyDocument`) are not grants and are not included.
    pub fn iam_statements(&self) -> Vec<IamStatement> {
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let props = &resource["Properties"];
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" => {
                    for policy in as_list(&props["Policies"]) {
                        let name = policy["PolicyName"].as_str();
                        push_statements(&mut out, id, name, &policy["PolicyDocument"]);
                    }
                }
                "AWS::S3::BucketPolicy" => {
                    push_statements(&mut out, id, None, &props["PolicyDocument"]);
                }
                _ => {}
            }
        }
        out
    }

    /// Policies whose statements this crate does not read, so least privilege cannot be
    /// checked for them: managed policies on roles, and policies of any other resource
    /// type (IAM policies, SAM function `Policies`, queue or topic policies, ...). Each
    /// entry is `<logical id>: <what>`.
    pub fn opaque_policies(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let ty = resource["Type"].as_str().unwrap_or_default();
            let props = &resource["Properties"];
            for arn in as_list(&props["ManagedPolicyArns"]) {
                out.push(format!("{id}: managed policy {}", render(arn)));
            }
            for key in ["Policies", "PolicyDocument"] {
                if props.get(key).is_some()
                    && !READ.contains(&(ty, key))
                    && !NOT_IAM.contains(&(ty, key))
                {
                    out.push(format!(
                        "{id} ({ty}): {key}, which this crate does not read"
                    ));
                }
            }
        }
        out
    }

    /// Allow statements that grant more than named actions on named resources: a wildcard
    /// action or resource (see [`is_wildcard_action`] and [`is_wildcard_resource`]), a
    /// `NotAction`/`NotResource`, or a `*` principal. Deny statements are guards, not
    /// grants, and are not reported. Each finding names the template, owner and problem.
    pub fn wildcard_grants(&self) -> Vec<String> {
        let mut out = Vec::new();
        for st in self.iam_statements().iter().filter(|s| s.is_allow()) {
            let at = format!("{}: {}", self.name(), st.location());
            for action in st.actions.iter().filter(|a| is_wildcard_action(a)) {
                out.push(format!("{at}: wildcard action {action:?}"));
            }
            for resource in st.resources.iter().filter(|r| is_wildcard_resource(r)) {
                out.push(format!("{at}: wildcard resource {:?}", render(resource)));
            }
            if st.has_not_action {
                out.push(format!("{at}: NotAction grants everything else"));
            }
            if st.has_not_resource {
                out.push(format!("{at}: NotResource grants everything else"));
            }
            if st.resources.is_empty() {
                out.push(format!("{at}: no Resource"));
            }
            if let Some(principal) = &st.principal {
                if principal == "*" || principal.get("AWS").is_some_and(|p| p == "*") {
                    out.push(format!("{at}: wildcard principal"));
                }
            }
        }
        out
    }
}

fn push_statements(out: &mut Vec<IamStatement>, owner: &str, policy: Option<&str>, doc: &Value) {
    for (index, st) in as_list(&doc["Statement"]).into_iter().enumerate() {
        let has_not_action = st.get("NotAction").is_some();
        let has_not_resource = st.get("NotResource").is_some();
        let action_key = if has_not_action {
            "NotAction"
        } else {
            "Action"
        };
        let resource_key = if has_not_resource {
            "NotResource"
        } else {
            "Resource"
        };
        out.push(IamStatement {
            owner: owner.to_string(),
            policy_name: policy.map(str::to_string),
            sid: st["Sid"].as_str().map(str::to_string),
            index,
            effect: st["Effect"].as_str().unwrap_or_default().to_string(),
            actions: as_list(&st[action_key]).into_iter().map(render).collect(),
            resources: as_list(&st[resource_key]).into_iter().cloned().collect(),
            has_not_action,
            has_not_resource,
            principal: st.get("Principal").cloned(),
        });
    }
}

/// Whether an IAM action names more than one action: `*`, `s3:*`, `dynamodb:Get*`, `s3:?etObject`.
pub fn is_wildcard_action(action: &str) -> bool {
    action.contains(['*', '?'])
}

/// Whether a `Resource` entry can name more than the resources it means: a wildcard in the
/// partition, service, region or account, or in the resource's name (`table/*`,
/// `log-group:*`, `arn:aws:s3:::*`). A wildcard *under* a named resource is scoped and
/// allowed: `${Bucket.Arn}/*`, `...:log-group:${Group}:log-stream:*`,
/// `...:${Api}/${Stage}/POST/@connections/*`. `Ref`, `Fn::GetAtt` and `Fn::ImportValue`
/// name one resource. Any other intrinsic (`Fn::Join`, `Fn::If`, ...) is not read here and
/// counts as a wildcard, since nothing shows it is scoped.
pub fn is_wildcard_resource(resource: &Value) -> bool {
    match (resource, single_entry(resource)) {
        (_, Some(("Ref" | "Fn::GetAtt" | "Fn::ImportValue", _))) => return false,
        (Value::String(_), _) | (_, Some(("Fn::Sub", _))) => {}
        _ => return true,
    }
    // Placeholders stand for one named value each; wildcards can't hide in them.
    let text = without_placeholders(&render(resource));
    if text == "*" {
        return true;
    }
    if let Some(rest) = text.strip_prefix("arn:") {
        let fields: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, name] = fields[..] else {
            return text.contains('*');
        };
        if [partition, service, region, account]
            .iter()
            .any(|f| f.contains('*'))
        {
            return true;
        }
        let segments: Vec<&str> = name.split(['/', ':']).collect();
        // arn:aws:s3:::bucket/key: the bucket is the name. arn:aws:dynamodb:r:a:table/name,
        // arn:aws:logs:r:a:log-group:name and arn:aws:execute-api:r:a:api/stage/...: the
        // first two segments name it.
        let named = if service == "s3" { 1 } else { 2 };
        return segments
            .iter()
            .take(named)
            .any(|s| s.contains('*') || s.is_empty());
    }
    // `${Bucket.Arn}/*`, literals: the leading name must be wildcard-free.
    let head = text.split(['/', ':']).next().unwrap_or_default();
    head.contains('*') || head.is_empty()
}

/// `text` with each `${...}` replaced by `X`.
fn without_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("${") {
        out.push_str(before);
        if let Some((_, tail)) = after.split_once('}') {
            out.push('X');
            rest = tail;
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_actions_are_detected() {
        for a in ["*", "s3:*", "dynamodb:Get*", "s3:?etObject"] {
            assert!(is_wildcard_action(a), "{a}");
        }
        assert!(!is_wildcard_action("dynamodb:GetItem"));
    }

    #[test]
    fn wildcard_resources_are_detected() {
        for r in [
            json!("*"),
            json!("arn:aws:s3:::*"),
            json!("arn:aws:dynamodb:us-east-1:123456789012:table/*"),
            json!({"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:*:${AWS::AccountId}:${Api}/Prod/POST/@connections/*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*/Prod/POST/@connections/*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*"}),
            json!({"Fn::Join": ["", ["arn:aws:lambda:", {"Ref": "AWS::Region"}, ":*:function:*"]]}),
            json!({"Fn::If": ["C", {"Ref": "T"}, "*"]}),
        ] {
            assert!(is_wildcard_resource(&r), "{r}");
        }
        for r in [
            json!({"Fn::GetAtt": ["Table", "Arn"]}),
            json!({"Ref": "Bucket"}),
            json!({"Fn::ImportValue": {"Fn::Sub": "${TableStackName}:ConnectionsTableArn"}}),
            json!({"Fn::Sub": "${Bucket.Arn}/*"}),
            json!("arn:aws:s3:::my-bucket/*"),
            json!({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Group}:log-stream:*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${StageName}/POST/@connections/*"}),
            json!({"Fn::Sub": ["arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}", {"T": {"Ref": "Table"}}]}),
        ] {
            assert!(!is_wildcard_resource(&r), "{r}");
        }
    }

    const SNIPPET: &str = r#"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: { Service: lambda.amazonaws.com }
            Action: sts:AssumeRole
      ManagedPolicyArns:
        - !Sub "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
      Policies:
        - PolicyName: too-much
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: dynamodb:*
                Resource: !GetAtt Table.Arn
              - Effect: Allow
                Action: execute-api:ManageConnections
                Resource: "*"
              - Effect: Allow
                NotAction: iam:*
                Resource: !GetAtt Table.Arn
              - Sid: Guard
                Effect: Deny
                Action: "*"
                Resource: "*"
"#;

    #[test]
    fn wildcard_grants_in_a_snippet_are_reported_and_deny_guards_are_not() {
        let t = Template::parse("snippet.yml", SNIPPET).unwrap();
        let found = t.wildcard_grants();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].contains("Role/too-much/#0: wildcard action \"dynamodb:*\""));
        assert!(found[1].contains("Role/too-much/#1: wildcard resource \"*\""));
        assert!(found.iter().any(|f| f.contains("NotAction")));
        assert!(!found.iter().any(|f| f.contains("Guard")));
        assert_eq!(t.iam_statements().len(), 4, "trust policy is not a grant");
        assert_eq!(t.opaque_policies().len(), 1);
    }

    #[test]
    fn policies_this_crate_does_not_read_are_opaque() {
        let t = Template::parse(
            "o.yml",
            r"
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties: { Policies: [AmazonDynamoDBFullAccess] }
  P:
    Type: AWS::IAM::Policy
    Properties: { PolicyName: p, PolicyDocument: { Statement: [] }, Roles: [!Ref R] }
  Q:
    Type: AWS::SQS::QueuePolicy
    Properties: { PolicyDocument: { Statement: [] }, Queues: [q] }
",
        )
        .unwrap();
        let opaque = t.opaque_policies();
        assert_eq!(opaque.len(), 3, "{opaque:#?}");
        assert!(opaque[0].starts_with("F (AWS::Serverless::Function): Policies"));
        assert!(t.iam_statements().is_empty());
    }
}
