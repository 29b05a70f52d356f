//! The join form `index.html` draws before the app runs, so that a first visit sees the
//! form and can type into it while the wasm downloads and compiles. The app takes it off
//! the page as it mounts and carries on from what was done on it.

use wasm_bindgen::JsCast;
use web_sys::HtmlInputElement;

use super::window;

/// What was done on the placeholder form before the app ran.
pub struct Placeholder {
    /// The name field's text: the last name used, or what was typed over it.
    pub name: String,
    /// Join was pressed (the page's own script kept it); the app joins at once.
    pub join_requested: bool,
}

/// Removes the placeholder form from the page and returns what was done on it; `None`
/// when the page had none (a tab resuming its session, or an `index.html` without it).
pub fn take() -> Option<Placeholder> {
    let placeholder = window()
        .document()?
        .query_selector("[data-placeholder]")
        .ok()??;
    let name = placeholder
        .query_selector("input")
        .ok()
        .flatten()
        .and_then(|input| input.dyn_into::<HtmlInputElement>().ok())
        .map(|input| input.value())
        .unwrap_or_default();
    let join_requested = placeholder
        .query_selector("form[data-join-requested]")
        .ok()
        .flatten()
        .is_some();
    // Taken off in the same task as the app mounts: no frame shows both forms, and no
    // keystroke falls between reading the field and the app's field taking over.
    placeholder.remove();
    Some(Placeholder {
        name,
        join_requested,
    })
}

#[cfg(test)]
mod tests {
    use crate::state::{NAME_STORAGE_KEY, SESSION_STORAGE_KEY};
    use webchat_shared_types::MAX_NAME_CHARS;

    const INDEX_HTML: &str = include_str!("../../../index.html");

    #[test]
    fn the_placeholder_reads_the_storage_keys_the_app_writes() {
        assert!(INDEX_HTML.contains(&format!(
            "sessionStorage.getItem(\"{SESSION_STORAGE_KEY}\")"
        )));
        assert!(INDEX_HTML.contains(&format!("localStorage.getItem(\"{NAME_STORAGE_KEY}\")")));
    }

    #[test]
    fn the_placeholder_name_field_takes_no_more_than_a_name() {
        assert!(INDEX_HTML.contains(&format!("maxlength=\"{MAX_NAME_CHARS}\"")));
    }
}
