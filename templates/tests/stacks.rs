//! Checks of the other stacks: templates/s3.yml, dynamodb.yml and hosting.yml, and of
//! what every template in templates/ has in common.

use std::collections::BTreeSet;

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
fn the_four_stacks_are_there_and_none_grants_a_wildcard() {
    let templates = all_templates();
    let names: BTreeSet<&str> = templates.iter().map(Template::name).collect();
    for expected in ["s3.yml", "dynamodb.yml", "websocket.yml", "hosting.yml"] {
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

#[test]
fn the_artifacts_bucket_is_encrypted_private_tls_only_and_expires_old_artifacts() {
    let t = load("s3.yml").unwrap();
    let (bucket, props) = only_resource(&t, "AWS::S3::Bucket");
    assert_private_encrypted_tls_only(&t, bucket);
    let rules = props["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .unwrap();
    assert!(rules
        .iter()
        .any(|r| r["Status"] == "Enabled" && r.get("ExpirationInDays").is_some()));
    assert_eq!(
        render(&t.output("ArtifactsBucket").unwrap()["Export"]["Name"]),
        "${AWS::StackName}:ArtifactsBucket"
    );
}

#[test]
fn the_tables_have_the_backends_keys_ttl_encryption_and_on_demand_billing() {
    let t = load("dynamodb.yml").unwrap();
    for (id, hash_key) in [
        ("ConnectionsTable", "connectionId"),
        ("NamesTable", "nameKey"),
    ] {
        let table = &t.resource(id).unwrap_or_else(|| panic!("{id}"))["Properties"];
        assert_eq!(table["BillingMode"], "PAY_PER_REQUEST", "{id}");
        assert_eq!(
            table["KeySchema"],
            json!([{"AttributeName": hash_key, "KeyType": "HASH"}]),
            "{id}"
        );
        assert_eq!(
            table["AttributeDefinitions"],
            json!([{"AttributeName": hash_key, "AttributeType": "S"}]),
            "{id}"
        );
        assert_eq!(
            table["TimeToLiveSpecification"],
            json!({"AttributeName": "ttl", "Enabled": true}),
            "{id}"
        );
        assert_eq!(table["SSESpecification"]["SSEEnabled"], true, "{id}");
        let pitr = render(&table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]);
        assert!(
            pitr.contains("PointInTimeRecoveryEnabled"),
            "{id}: PITR follows the parameter"
        );
    }
    assert!(t.parameter("PointInTimeRecovery").is_some());
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
    for name in ["ConnectionsTable", "NamesTable"] {
        assert!(
            exports.contains(&format!("${{TableStackName}}:{name}")),
            "{name}"
        );
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

    // The one grant: CloudFront may read objects, on behalf of this distribution only.
    let grants: Vec<_> = t
        .iam_statements()
        .into_iter()
        .filter(|s| s.is_allow())
        .collect();
    assert_eq!(grants.len(), 1, "{grants:#?}");
    let g = &grants[0];
    assert_eq!(g.actions, ["s3:GetObject"]);
    assert_eq!(
        g.principal,
        Some(json!({"Service": "cloudfront.amazonaws.com"}))
    );
    assert_eq!(g.rendered_resources(), [format!("${{{bucket}.Arn}}/*")]);
    let policy = &t.resource(&g.owner).unwrap()["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        render(&policy["Condition"]["StringEquals"]["AWS:SourceArn"]),
        format!("arn:${{AWS::Partition}}:cloudfront::${{AWS::AccountId}}:distribution/${{{distribution}}}")
    );
    for output in ["SiteBucket", "DistributionId", "SiteURL"] {
        assert!(t.output(output).is_some(), "{output}");
    }
}
