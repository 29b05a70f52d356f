//! How the tests and the bench start `webchat-local --template`.

use std::path::Path;
use std::process::Command;

/// `webchat-local --template`: `template`'s routes served by the function binaries in
/// `functions_dir`, on the DynamoDB at `dynamodb_endpoint`, on a free port of 127.0.0.1.
/// Arguments added to the command follow these.
pub fn template_gateway_command(
    local_bin: &Path,
    template: &Path,
    functions_dir: &Path,
    dynamodb_endpoint: &str,
) -> Command {
    let mut command = Command::new(local_bin);
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(["--dynamodb-endpoint", dynamodb_endpoint])
        .arg("--template")
        .arg(template)
        .arg("--functions-dir")
        .arg(functions_dir);
    command
}
