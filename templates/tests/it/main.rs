//! The templates' checks, one test binary (one link, one run): each module is one file's
//! checks, and `recorded` is what the chat's routes really call, which the grant checks
//! compare the template against.

mod deployment;
mod observability;
mod recorded;
mod stacks;
mod websocket_template;
