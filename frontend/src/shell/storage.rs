//! localStorage (the last name used) and this tab's sessionStorage (its session, the
//! sign-in's tokens and its PKCE state).

use super::window;
use crate::state::NAME_STORAGE_KEY;

/// This tab's own storage: it survives reloads, and a new tab starts without it.
fn session() -> Option<web_sys::Storage> {
    window().session_storage().ok().flatten()
}

/// An item of this tab's sessionStorage.
pub fn load(key: &str) -> Option<String> {
    session()?.get_item(key).ok().flatten()
}

/// Keeps `value` under `key` in this tab's sessionStorage; an empty one removes it.
pub fn save(key: &str, value: &str) {
    if let Some(storage) = session() {
        let _ = if value.is_empty() {
            storage.remove_item(key)
        } else {
            storage.set_item(key, value)
        };
    }
}

/// The last name used, from localStorage.
pub fn load_name() -> Option<String> {
    window()
        .local_storage()
        .ok()??
        .get_item(NAME_STORAGE_KEY)
        .ok()
        .flatten()
}

/// Remembers the name for the next visit (localStorage); a browser without storage
/// just asks again.
pub fn save_name(name: &str) {
    if let Ok(Some(storage)) = window().local_storage() {
        let _ = storage.set_item(NAME_STORAGE_KEY, name);
    }
}
