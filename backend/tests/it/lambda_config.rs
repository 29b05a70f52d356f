//! The Lambda binary's configuration as an operator meets it: a wrong setting fails the
//! cold start with an error that names the variable.

use std::process::Command;

fn cold_start(vars: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_webchat-lambda"))
        .env_clear()
        .env("CONNECTIONS_TABLE", "Connections")
        .env("NAMES_TABLE", "Names")
        .env("MEMBERS_TABLE", "Members")
        .env("MESSAGES_TABLE", "Messages")
        .envs(vars.iter().copied())
        .output()
        .expect("webchat-lambda runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn an_invalid_rate_limit_fails_the_cold_start_naming_the_variable() {
    for (name, value, says) in [
        ("MESSAGE_RATE_PER_SECOND", "fast", "is not a rate"),
        ("MESSAGE_BURST", "0", "is not a burst"),
        ("ACTION_RATE_PER_SECOND", "-5", "is not a rate"),
        ("ACTION_BURST", "many", "is not a burst"),
        ("PRESENCE_LIMIT", "0", "is not a member count"),
    ] {
        let (succeeded, output) = cold_start(&[(name, value)]);
        assert!(!succeeded, "{name}={value} started: {output}");
        assert!(
            output.contains(&format!(r#"{name}=\"{value}\" {says}"#))
                || output.contains(&format!(r#"{name}="{value}" {says}"#)),
            "{name}={value}: {output}"
        );
    }
}

#[test]
fn a_missing_table_name_fails_the_cold_start_naming_the_variable() {
    let tables = [
        ("CONNECTIONS_TABLE", "Connections"),
        ("NAMES_TABLE", "Names"),
        ("MEMBERS_TABLE", "Members"),
        ("MESSAGES_TABLE", "Messages"),
    ];
    for (missing, _) in tables {
        let output = Command::new(env!("CARGO_BIN_EXE_webchat-lambda"))
            .env_clear()
            .envs(tables.iter().filter(|(name, _)| *name != missing).copied())
            // No region lookup from instance metadata: it would only slow the test.
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("webchat-lambda runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !output.status.success(),
            "started without {missing}: {text}"
        );
        assert!(
            text.contains(&format!("environment variable {missing} is not set")),
            "without {missing}: {text}"
        );
    }
}

#[test]
fn an_invalid_fanout_threshold_fails_the_cold_start_naming_the_variable() {
    let (succeeded, output) = cold_start(&[("FANOUT_INLINE", "lots")]);
    assert!(!succeeded, "FANOUT_INLINE=lots started: {output}");
    assert!(
        output.contains(r#"FANOUT_INLINE=\"lots\" is not a whole number of members"#)
            || output.contains(r#"FANOUT_INLINE="lots" is not a whole number of members"#),
        "{output}"
    );
}
