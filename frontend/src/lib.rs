//! The webchat browser UI, in three parts: [`state`] decides (frames and user actions in,
//! a new state and commands out, plain Rust), [`view`] shows the state with Leptos
//! components and turns user actions into updates of it, and [`shell`] does the I/O
//! (the socket, timers, storage, sign-in) the commands ask for.
//!
//! Everything from the network is rendered as text; nothing is ever inserted as HTML.

#![warn(missing_docs)]

pub mod shell;
pub mod state;
pub mod view;

pub use view::App;
