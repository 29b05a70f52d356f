//! Checks of the other stacks: templates/s3.yml, dynamodb.yml, hosting.yml and the root
//! stack root.yml, and of what every template in templates/ has in common.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use webchat_templates::{load, render, templates_dir, Template};

fn all_templates() -> Vec<Template> {
    let mut paths: Vec<_> = std::fs::read_dir(templates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| Template::load(p).unwrap())
        .collect()
}

fn only_resource<'a>(t: &'a Template, ty: &'a str) -> (&'a str, &'a Value) {
    let found: Vec<_> = t.resources_of_type(ty).collect();
    assert_eq!(found.len(), 1, "{}: one {ty}", t.name());
    found[0]
}

#[test]
fn the_stacks_and_the_root_are_there_and_none_grants_a_wildcard() {
    let templates = all_templates();
    let names: BTreeSet<&str> = templates.iter().map(Template::name).collect();
    for expected in [
        "s3.yml",
        "dynamodb.yml",
        "websocket.yml",
        "hosting.yml",
        "root.yml",
    ] {
        assert!(names.contains(expected), "templates/{expected} is missing");
    }
    for t in &templates {
        assert_eq!(t.wildcard_grants(), Vec::<String>::new());
        assert_eq!(t.opaque_policies(), Vec::<String>::new());
    }
}

/// Private, encrypted bucket that refuses plain HTTP.
fn assert_private_encrypted_tls_only(t: &Template, bucket_id: &str) {
    let bucket = &t.resource(bucket_id).unwrap()["Properties"];
    let block = &bucket["PublicAccessBlockConfiguration"];
    for key in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[key], true, "{}: {bucket_id} {key}", t.name());
    }
    let sse = &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        ["ServerSideEncryptionByDefault"]["SSEAlgorithm"];
    assert!(
        sse == "AES256" || sse == "aws:kms",
        "{}: {bucket_id} encryption",
        t.name()
    );
    assert_eq!(
        bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"],
        "BucketOwnerEnforced"
    );

    let tls_guard = t.iam_statements().into_iter().find(|s| {
        !s.is_allow()
            && s.principal == Some(json!("*"))
            && s.has_action("s3:*")
            && s.resources
                .iter()
                .any(|r| render(r) == format!("${{{bucket_id}.Arn}}"))
            && s.resources
                .iter()
                .any(|r| render(r) == format!("${{{bucket_id}.Arn}}/*"))
    });
    let tls_guard =
        tls_guard.unwrap_or_else(|| panic!("{}: {bucket_id} has no TLS-only policy", t.name()));
    let policy = t
        .resources_of_type("AWS::S3::BucketPolicy")
        .find(|(id, _)| *id == tls_guard.owner)
        .unwrap()
        .1;
    let doc = &policy["Properties"]["PolicyDocument"]["Statement"];
    assert!(doc
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["Condition"] == json!({"Bool": {"aws:SecureTransport": "false"}})));
}

/// SAM names artifacts by their content, so a deployed stack may point at one uploaded long
/// ago: current artifacts must never expire, or a rollback to them fails.
#[test]
fn the_artifacts_bucket_is_encrypted_private_tls_only_versioned_and_keeps_current_artifacts() {
    let t = load("s3.yml").unwrap();
    let (bucket, props) = only_resource(&t, "AWS::S3::Bucket");
    assert_private_encrypted_tls_only(&t, bucket);
    let props = &props["Properties"];
    assert_eq!(props["VersioningConfiguration"]["Status"], "Enabled");
    let rules = props["LifecycleConfiguration"]["Rules"].as_array().unwrap();
    for rule in rules {
        for current_expiry in ["ExpirationInDays", "ExpirationDate"] {
            assert!(
                rule.get(current_expiry).is_none(),
                "rule {} expires current artifacts",
                rule["Id"]
            );
        }
    }
    let noncurrent: Vec<_> = rules
        .iter()
        .filter(|r| r["Status"] == "Enabled")
        .map(|r| &r["NoncurrentVersionExpiration"]["NoncurrentDays"])
        .collect();
    assert_eq!(
        noncurrent,
        [&json!({"Ref": "NoncurrentArtifactExpirationDays"})],
        "replaced artifacts expire after the parameter's days"
    );
    assert_eq!(
        render(&t.output("ArtifactsBucket").unwrap()["Export"]["Name"]),
        "${AWS::StackName}:ArtifactsBucket"
    );
}

#[test]
fn the_tables_have_the_backends_keys_ttl_encryption_and_on_demand_billing() {
    let t = load("dynamodb.yml").unwrap();
    // (table, partition key, sort key): the keys the backend's DynamoStore reads and writes.
    let tables = [
        ("ConnectionsTable", "connectionId", None),
        ("NamesTable", "nameKey", None),
        ("MembersTable", "room", Some("connectionId")),
        ("MessagesTable", "room", Some("messageId")),
    ];
    assert_eq!(
        t.resources_of_type("AWS::DynamoDB::Table").count(),
        tables.len(),
        "no other tables"
    );
    for (id, hash_key, range_key) in tables {
        let table = &t.resource(id).unwrap_or_else(|| panic!("{id}"))["Properties"];
        assert_eq!(table["BillingMode"], "PAY_PER_REQUEST", "{id}");
        let mut schema = vec![json!({"AttributeName": hash_key, "KeyType": "HASH"})];
        let mut attributes = vec![json!({"AttributeName": hash_key, "AttributeType": "S"})];
        if let Some(range_key) = range_key {
            schema.push(json!({"AttributeName": range_key, "KeyType": "RANGE"}));
            attributes.push(json!({"AttributeName": range_key, "AttributeType": "S"}));
        }
        assert_eq!(table["KeySchema"], json!(schema), "{id}");
        assert_eq!(table["AttributeDefinitions"], json!(attributes), "{id}");
        assert_eq!(
            table["TimeToLiveSpecification"],
            json!({"AttributeName": "ttl", "Enabled": true}),
            "{id}"
        );
        // The key DynamoDB owns (free) unless TableKmsKey names a KMS key.
        assert_eq!(
            table["SSESpecification"],
            json!({
                "SSEEnabled": {"Fn::If": ["KmsKeyGiven", true, false]},
                "SSEType": {"Fn::If": ["KmsKeyGiven", "KMS", {"Ref": "AWS::NoValue"}]},
                "KMSMasterKeyId": {"Fn::If": ["KmsKeyGiven", {"Ref": "TableKmsKey"}, {"Ref": "AWS::NoValue"}]},
            }),
            "{id}"
        );
        let pitr = render(&table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]);
        assert!(
            pitr.contains("PointInTimeRecoveryEnabled"),
            "{id}: PITR follows the parameter"
        );
    }
    assert!(t.parameter("PointInTimeRecovery").is_some());
    assert_eq!(t.parameter("TableKmsKey").unwrap()["Default"], "");
    assert_eq!(
        t.json()["Conditions"]["KmsKeyGiven"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "TableKmsKey"}, ""]}]})
    );
}

#[test]
fn the_table_stack_exports_everything_the_websocket_stack_imports() {
    let tables = load("dynamodb.yml").unwrap();
    let exports: BTreeSet<String> = tables.json()["Outputs"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|o| o.get("Export"))
        .map(|e| render(&e["Name"]).replace("${AWS::StackName}", "${TableStackName}"))
        .collect();
    for table in [
        "ConnectionsTable",
        "NamesTable",
        "MembersTable",
        "MessagesTable",
    ] {
        for name in [table.to_string(), format!("{table}Arn")] {
            assert!(
                exports.contains(&format!("${{TableStackName}}:{name}")),
                "{name}"
            );
        }
    }

    let websocket = load("websocket.yml").unwrap();
    let mut imports = BTreeSet::new();
    collect_imports(websocket.json(), &mut imports);
    assert!(!imports.is_empty());
    for import in &imports {
        assert!(
            exports.contains(import),
            "websocket.yml imports {import}, which dynamodb.yml does not export"
        );
    }
    assert!(websocket.parameter("TableStackName").is_some());
}

fn collect_imports(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(arg) = map.get("Fn::ImportValue") {
                out.insert(render(arg));
            }
            map.values().for_each(|v| collect_imports(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_imports(v, out)),
        _ => {}
    }
}

#[test]
fn the_ui_bucket_is_private_and_only_its_cloudfront_distribution_reads_it_through_oac() {
    let t = load("hosting.yml").unwrap();
    let (bucket, _) = only_resource(&t, "AWS::S3::Bucket");
    assert_private_encrypted_tls_only(&t, bucket);

    let (oac, oac_props) = only_resource(&t, "AWS::CloudFront::OriginAccessControl");
    let config = &oac_props["Properties"]["OriginAccessControlConfig"];
    assert_eq!(config["OriginAccessControlOriginType"], "s3");
    assert_eq!(config["SigningBehavior"], "always");

    let (distribution, d) = only_resource(&t, "AWS::CloudFront::Distribution");
    let config = &d["Properties"]["DistributionConfig"];
    let origin = &config["Origins"][0];
    assert_eq!(
        render(&origin["DomainName"]),
        format!("${{{bucket}.RegionalDomainName}}")
    );
    assert_eq!(
        render(&origin["OriginAccessControlId"]),
        format!("${{{oac}.Id}}")
    );
    assert_eq!(
        config["DefaultCacheBehavior"]["ViewerProtocolPolicy"],
        "redirect-to-https"
    );
    assert_eq!(config["DefaultRootObject"], "index.html");

    // The only grants: CloudFront, on behalf of this distribution only, may read objects,
    // and may list the bucket so that a missing file answers 404 rather than 403.
    let mut grants: Vec<_> = t
        .iam_statements()
        .into_iter()
        .filter(webchat_templates::IamStatement::is_allow)
        .map(|g| {
            assert_eq!(
                g.principal,
                Some(json!({"Service": "cloudfront.amazonaws.com"}))
            );
            let statement = &t.resource(&g.owner).unwrap()["Properties"]["PolicyDocument"]
                ["Statement"][g.index];
            assert_eq!(
                render(&statement["Condition"]["StringEquals"]["AWS:SourceArn"]),
                format!("arn:${{AWS::Partition}}:cloudfront::${{AWS::AccountId}}:distribution/${{{distribution}}}")
            );
            (g.actions.clone(), g.rendered_resources())
        })
        .collect();
    grants.sort();
    assert_eq!(
        grants,
        [
            (
                vec!["s3:GetObject".to_string()],
                vec![format!("${{{bucket}.Arn}}/*")]
            ),
            (
                vec!["s3:ListBucket".to_string()],
                vec![format!("${{{bucket}.Arn}}")]
            ),
        ]
    );
    // Listing reaches S3 only as a request for the bucket itself with a query string:
    // CloudFront sends "/" as the root object, and its cache policy forwards no query
    // string (CachingOptimized).
    assert_eq!(
        config["DefaultCacheBehavior"]["CachePolicyId"],
        "658327ea-f89d-4fab-a63d-7e88639e58f6"
    );
    for output in ["SiteBucket", "DistributionId", "SiteURL"] {
        assert!(t.output(output).is_some(), "{output}");
    }
}

/// CloudFront's managed cache policies whose cache key holds both `Accept-Encoding`
/// normalisations, gzip and brotli: `CachingOptimized`. (`CachingOptimizedForUncompressedObjects`
/// and `CachingDisabled` hold neither, so CloudFront would serve nothing compressed.)
const MANAGED_POLICIES_WITH_GZIP_AND_BROTLI: &[&str] = &["658327ea-f89d-4fab-a63d-7e88639e58f6"];

/// Why a cache behaviour of `template`'s distributions would not serve gzip and brotli:
/// CloudFront compresses only where `Compress` is true and the cache policy, managed or
/// the template's own `AWS::CloudFront::CachePolicy`, enables both encodings.
fn compression_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, distribution) in template.resources_of_type("AWS::CloudFront::Distribution") {
        let config = &distribution["Properties"]["DistributionConfig"];
        let behaviours = std::iter::once((
            "DefaultCacheBehavior".to_string(),
            &config["DefaultCacheBehavior"],
        ))
        .chain(
            config["CacheBehaviors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| (format!("CacheBehaviors {}", b["PathPattern"]), b)),
        );
        for (name, behaviour) in behaviours {
            let at = format!("{id} {name}");
            if behaviour["Compress"] != json!(true) {
                problems.push(format!("{at}: Compress is not true"));
            }
            let policy = &behaviour["CachePolicyId"];
            if let Some(managed) = policy.as_str() {
                if !MANAGED_POLICIES_WITH_GZIP_AND_BROTLI.contains(&managed) {
                    problems.push(format!(
                        "{at}: managed cache policy {managed} is not known to enable gzip and brotli"
                    ));
                }
                continue;
            }
            let own = webchat_templates::referenced_id(policy)
                .filter(|id| template.resource_type(id) == Some("AWS::CloudFront::CachePolicy"));
            let Some(own) = own else {
                problems.push(format!(
                    "{at}: no cache policy (legacy cache settings cannot serve brotli): {policy}"
                ));
                continue;
            };
            let key = &template.resource(&own).unwrap()["Properties"]["CachePolicyConfig"]
                ["ParametersInCacheKeyAndForwardedToOrigin"];
            for setting in ["EnableAcceptEncodingGzip", "EnableAcceptEncodingBrotli"] {
                if key[setting] != json!(true) {
                    problems.push(format!("{at}: cache policy {own} has no {setting}: true"));
                }
            }
        }
    }
    problems
}

#[test]
fn the_ui_distribution_serves_gzip_and_brotli() {
    let t = load("hosting.yml").unwrap();
    only_resource(&t, "AWS::CloudFront::Distribution");
    assert_eq!(compression_problems(&t), Vec::<String>::new());
}

/// The check above finds each way a distribution can fail to compress.
#[test]
fn a_distribution_that_would_not_compress_is_found_out() {
    let template = |behaviour: Value, policy: Value| {
        Template::from_json(
            "t.yml",
            json!({"Resources": {
                "Site": {"Type": "AWS::CloudFront::Distribution", "Properties": {
                    "DistributionConfig": {"DefaultCacheBehavior": behaviour}}},
                "Policy": {"Type": "AWS::CloudFront::CachePolicy", "Properties": {
                    "CachePolicyConfig": {"ParametersInCacheKeyAndForwardedToOrigin": policy}}},
            }}),
        )
        .unwrap()
    };
    let both = json!({"EnableAcceptEncodingGzip": true, "EnableAcceptEncodingBrotli": true});
    let own = json!({"Compress": true, "CachePolicyId": {"Ref": "Policy"}});
    assert!(compression_problems(&template(own.clone(), both.clone())).is_empty());

    let gzip_only = json!({"EnableAcceptEncodingGzip": true, "EnableAcceptEncodingBrotli": false});
    let uncompressed =
        json!({"Compress": true, "CachePolicyId": "b2884449-e4de-46a7-ac36-70bc7f1ddd6d"});
    for (behaviour, policy, problem) in [
        (
            json!({"CachePolicyId": {"Ref": "Policy"}}),
            both.clone(),
            "Compress is not true",
        ),
        (own.clone(), gzip_only, "no EnableAcceptEncodingBrotli"),
        (
            uncompressed,
            both.clone(),
            "not known to enable gzip and brotli",
        ),
        (
            json!({"Compress": true, "ForwardedValues": {}}),
            both,
            "no cache policy",
        ),
    ] {
        let problems = compression_problems(&template(behaviour, policy));
        assert!(
            problems.len() == 1 && problems[0].contains(problem),
            "{problem}: {problems:?}"
        );
    }
}

/// root.yml deploys the three stacks as nested SAM applications and passes each of their
/// parameters through, defined as they define it, so that both ways of deploying (one
/// root stack, or the stacks one by one) deploy the same chat.
#[test]
fn the_root_nests_the_tables_websocket_and_hosting_stacks_and_passes_their_parameters_through() {
    let root = load("root.yml").unwrap();
    assert_eq!(root.json()["Transform"], "AWS::Serverless-2016-10-31");
    let nested: BTreeMap<&str, &str> = root
        .resources_of_type("AWS::Serverless::Application")
        .map(|(id, r)| (id, r["Properties"]["Location"].as_str().unwrap()))
        .collect();
    assert_eq!(
        nested,
        BTreeMap::from([
            ("Hosting", "hosting.yml"),
            ("Tables", "dynamodb.yml"),
            ("WebSocket", "websocket.yml"),
        ])
    );
    assert_eq!(
        root.resources().count(),
        nested.len(),
        "only the nested stacks"
    );

    let mut passed_through = BTreeSet::new();
    for (id, location) in &nested {
        let child = load(location).unwrap();
        let given = root.resource(id).unwrap()["Properties"]["Parameters"]
            .as_object()
            .unwrap();
        let child_parameters: BTreeSet<&String> = child.json()["Parameters"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(
            given.keys().collect::<BTreeSet<_>>(),
            child_parameters,
            "{id} is given every parameter of {location}, and no other"
        );
        for (name, value) in given {
            if (*id, name.as_str()) == ("WebSocket", "TableStackName") {
                // The table stack's name prefixes the exports the websocket stack imports.
                assert_eq!(
                    value,
                    &json!({"Fn::GetAtt": ["Tables", "Outputs.StackName"]})
                );
                continue;
            }
            if (*id, name.as_str()) == ("WebSocket", "AuthCallbackUrls") {
                // Cognito sends the browser back to the site unless URLs are given.
                assert_eq!(
                    value,
                    &json!({"Fn::If": [
                        "CallbackToSite",
                        {"Fn::Sub": "${Hosting.Outputs.SiteURL}/"},
                        {"Ref": name}
                    ]})
                );
                assert_eq!(root.parameter(name).unwrap()["Type"], "String");
                assert_eq!(root.parameter(name).unwrap()["Default"], "");
                passed_through.insert(name.clone());
                continue;
            }
            assert_eq!(value, &json!({ "Ref": name }), "{id}.{name}");
            assert_eq!(
                root.parameter(name),
                child.parameter(name),
                "root.yml defines {name} as {location} does"
            );
            passed_through.insert(name.clone());
        }
    }
    let root_parameters: BTreeSet<String> = root.json()["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(root_parameters, passed_through);
    assert_eq!(
        load("dynamodb.yml").unwrap().output("StackName").unwrap()["Value"],
        json!({"Ref": "AWS::StackName"})
    );

    // Each root output is an output of the nested stack it reads; `cargo xtask deploy`
    // reads these.
    let outputs = [
        "WebSocketURL",
        "SiteURL",
        "SiteBucket",
        "DistributionId",
        "AuthIssuer",
        "AuthClientId",
        "AuthAuthorizeUrl",
        "AuthTokenUrl",
        "AuthLogoutUrl",
    ];
    for name in outputs {
        let value = &root
            .output(name)
            .unwrap_or_else(|| panic!("root.yml has no output {name}"))["Value"];
        let [id, attribute] = [0, 1].map(|i| value["Fn::GetAtt"][i].as_str().unwrap_or_default());
        let child_output = attribute.strip_prefix("Outputs.").unwrap();
        let child = load(nested[id]).unwrap();
        assert!(
            child.output(child_output).is_some(),
            "root output {name} reads {id}'s {child_output}, which {} lacks",
            nested[id]
        );
    }
}

/// The sign-in outputs exist in the root exactly when they exist in the websocket stack:
/// for every value of Auth, the same outputs, under the same conditions' values.
#[test]
fn the_roots_sign_in_outputs_exist_exactly_when_the_websocket_stacks_do() {
    let root = load("root.yml").unwrap();
    let websocket = load("websocket.yml").unwrap();
    let oidc = [
        ("Issuer", "https://issuer.example"),
        ("Audience", "client"),
        ("OidcAuthorizeUrl", "https://issuer.example/authorize"),
        ("OidcTokenUrl", "https://issuer.example/token"),
    ];
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Auth", "none")],
        vec![("Auth", "cognito")],
        [vec![("Auth", "oidc")], oidc.to_vec()].concat(),
        [
            vec![
                ("Auth", "oidc"),
                ("OidcLogoutUrl", "https://issuer.example/logout"),
            ],
            oidc.to_vec(),
        ]
        .concat(),
    ];
    for parameters in cases {
        let names = |t: &Template| -> BTreeSet<String> {
            let t = t.with_parameters(&parameters).unwrap();
            t.json()["Outputs"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with("Auth"))
                .cloned()
                .collect()
        };
        let in_root = names(&root);
        assert_eq!(in_root, names(&websocket), "{parameters:?}");
        let on =
            parameters.contains(&("Auth", "cognito")) || parameters.contains(&("Auth", "oidc"));
        assert_eq!(in_root.contains("AuthIssuer"), on, "{parameters:?}");
    }
}
