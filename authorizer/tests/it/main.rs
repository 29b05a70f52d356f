//! The authorizer's integration tests, one binary: the verifier against an issuer
//! served over real HTTP, and the Lambda handler around it.

mod common;
mod handler;
mod verify;
