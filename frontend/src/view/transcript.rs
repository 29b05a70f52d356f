//! The room's lines, keyed by entry id and version. It follows new lines while the reader
//! is at the end, counts them while they are scrolled up, asks for the page before the
//! first line at the top, and keeps the lines being read in place when it comes in.

use leptos::{html, prelude::*};

use super::{entry_row::EntryRow, flag, text, ui, Ui};
use crate::shell::{self, timers};
use crate::state::ChatState;

#[component]
pub(super) fn Transcript() -> impl IntoView {
    let Ui {
        chat, following, ..
    } = ui();
    let list: NodeRef<html::Div> = NodeRef::new();
    let unseen = RwSignal::new(0usize);
    // The list's height when an older page was asked for.
    let height_before = StoredValue::new(0);
    let scroll = move |from_end: i32| {
        timers::next_frame(Box::new(move || {
            if let Some(list) = list.get_untracked() {
                list.set_scroll_top(list.scroll_height() - from_end);
            }
        }));
    };
    Effect::new(move |previous: Option<(Option<u64>, Option<u64>)>| {
        let ends = chat.with(|c| {
            let entries = &c.room().entries;
            (entries.first().map(|e| e.id), entries.last().map(|e| e.id))
        });
        let (oldest_before, newest_before) = previous.unwrap_or_default();
        if following.get() {
            unseen.set(0);
            scroll(0);
        } else if ends.1 == newest_before && ends.0 != oldest_before {
            scroll(height_before.get_value());
        } else if ends != (oldest_before, newest_before) {
            let added = chat.with_untracked(|c| {
                c.room()
                    .entries
                    .iter()
                    .rev()
                    .take_while(|e| Some(e.id) > newest_before)
                    .count()
            });
            unseen.update(|n| *n += added);
        }
        ends
    });
    let on_scroll = move |_| {
        let Some(list) = list.get_untracked() else {
            return;
        };
        let at_end = list.scroll_height() - list.scroll_top() - list.client_height() <= 24;
        if following.get_untracked() != at_end {
            following.set(at_end);
        }
        if list.scroll_top() <= 0 {
            height_before.set_value(list.scroll_height());
            shell::dispatch(&mut ChatState::load_older);
        }
    };
    view! {
        <div class="transcript-wrap">
            <div
                class="transcript"
                data-testid="transcript"
                node_ref=list
                role="log"
                aria-live="polite"
                aria-label="Messages"
                tabindex="0"
                on:scroll=on_scroll
            >
                <ol>
                    <For
                        each=move || chat.with(|c| c.room().entries.clone())
                        key=|entry| (entry.id, entry.version)
                        children=|entry| view! { <EntryRow entry /> }
                    />
                </ol>
            </div>
            <button
                type="button"
                class="jump"
                data-testid="jump-to-latest"
                hidden=flag(move || unseen.get() == 0)
                on:click=move |_| following.set(true)
            >
                {text(move || format!("{} new ↓", unseen.get()))}
            </button>
        </div>
    }
}
