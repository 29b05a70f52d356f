//! Mounts the app; everything else lives in the library.

// Talc instead of the default dlmalloc: a smaller allocator in the download.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

fn main() {
    leptos::mount::mount_to_body(webchat_frontend::App);
}
