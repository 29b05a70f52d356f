//! Timers and the clock: `setTimeout`, `setInterval`, `requestAnimationFrame`, window
//! events and `Date`.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::window;

/// A pending `setTimeout`, and its callback (freed with it).
pub struct Timer {
    id: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    /// Cancels the timer before it fires.
    pub fn clear(self) {
        window().clear_timeout_with_handle(self.id);
    }
}

fn clamp(delay_ms: u32) -> i32 {
    delay_ms.min(i32::MAX as u32) as i32
}

/// Runs `f` once after `delay_ms`; dropping the returned [`Timer`] before then leaks
/// nothing but the callback, [`Timer::clear`] cancels it.
pub fn timer(f: Box<dyn FnOnce()>, delay_ms: u32) -> Option<Timer> {
    let mut f = Some(f);
    let callback = Closure::wrap(Box::new(move || {
        if let Some(f) = f.take() {
            f();
        }
    }) as Box<dyn FnMut()>);
    let id = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            clamp(delay_ms),
        )
        .ok()?;
    Some(Timer {
        id,
        _callback: callback,
    })
}

/// Runs `f` once after `delay_ms`, for sure.
pub fn after(f: Box<dyn FnOnce()>, delay_ms: u32) {
    // The callback must outlive the wait: it frees itself once it has run.
    let callback = Closure::once_into_js(f);
    let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(
        callback.unchecked_ref(),
        clamp(delay_ms),
    );
}

/// Runs `f` every `period_ms`, for the page's lifetime.
pub fn every(f: Box<dyn FnMut()>, period_ms: u32) {
    let callback = Closure::wrap(f);
    let _ = window().set_interval_with_callback_and_timeout_and_arguments_0(
        callback.as_ref().unchecked_ref(),
        clamp(period_ms),
    );
    callback.forget();
}

/// Runs `f` before the next repaint, once the page's layout is up to date.
pub fn next_frame(f: Box<dyn FnOnce()>) {
    let _ = window().request_animation_frame(Closure::once_into_js(f).unchecked_ref());
}

/// Calls `f` on each `event` at the window, for the page's lifetime.
pub fn on_window(event: &str, f: Box<dyn FnMut()>) {
    let callback = Closure::wrap(f);
    let _ = window().add_event_listener_with_callback(event, callback.as_ref().unchecked_ref());
    callback.forget();
}

/// Milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// The local time of day and the ISO form of a timestamp.
pub fn local_time(timestamp_ms: f64) -> (String, String) {
    let date = js_sys::Date::new(&JsValue::from_f64(timestamp_ms));
    (
        crate::state::clock(date.get_hours(), date.get_minutes()),
        date.to_iso_string().as_string().unwrap_or_default(),
    )
}
