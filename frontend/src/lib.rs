//! The webchat browser UI, in three parts: [`state`] decides (frames and user actions in,
//! a new state and commands out, plain Rust), [`view`] shows the state with Leptos
//! components and turns user actions into updates of it, and [`shell`] does the I/O
//! (the socket, timers, storage, sign-in) the commands ask for.
//!
//! Everything from the network is rendered as text; nothing is ever inserted as HTML.

#![warn(missing_docs)]
// The browser's clock, timers and JSON numbers are f64 milliseconds; the page turns them
// into whole numbers of bounded, non-negative size (delays, expiries, counts), where an
// `as` cast is the plain reading.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod shell;
pub mod state;
pub mod view;

pub use view::App;
