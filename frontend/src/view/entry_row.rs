//! One transcript line: a system line, or a message with its sender, time and (own
//! messages) delivery. All text goes in as text nodes.

use leptos::either::Either;
use leptos::prelude::*;

use super::yes;
use crate::shell::timers;
use crate::state::{Delivery, Entry, EntryKind};

#[component]
pub(super) fn EntryRow(entry: Entry) -> impl IntoView {
    let title = entry.title();
    match entry.kind {
        EntryKind::System { text, divider } => Either::Left(view! {
            <li
                class=if divider { "system divider" } else { "system" }
                data-testid=if divider { "away-divider" } else { "system-line" }
            >
                {text}
            </li>
        }),
        EntryKind::Message {
            sender,
            text,
            timestamp_ms,
            private,
            own,
            to,
            delivery,
        } => {
            let (delivery_key, delivery_label) = match delivery {
                Delivery::Received => ("received", ""),
                Delivery::Pending => ("pending", "sending…"),
                Delivery::Sent { .. } => ("sent", "sent"),
                Delivery::Failed { .. } => ("failed", "not sent"),
            };
            let class = format!(
                "msg{}{} {delivery_key}",
                if own { " own" } else { "" },
                if private { " private" } else { "" }
            );
            let (time, iso) = timers::local_time(timestamp_ms);
            let sender_key = sender.clone();
            let private_tag = private.then(|| match to {
                Some(to) => format!("private to {to}"),
                None => "private".to_string(),
            });
            Either::Right(view! {
                <li
                    class=class
                    data-testid="message"
                    data-sender=sender_key
                    data-own=yes(own)
                    data-private=yes(private)
                    data-delivery=delivery_key
                    title=title
                >
                    <div class="meta">
                        <span class="sender" data-testid="message-sender">{sender}</span>
                        {private_tag.map(|tag| view! { <span class="tag" data-testid="private-tag">{tag}</span> })}
                        <time datetime=iso>{time}</time>
                        {own.then(|| view! { <span class="delivery" data-testid="delivery">{delivery_label}</span> })}
                    </div>
                    <p class="text" data-testid="message-text">{text}</p>
                </li>
            })
        }
    }
}
