//! Fair use per connection: how many frames one connection may send, and the one
//! algorithm every store applies to decide.
//!
//! Each connection has two token buckets: one for `message` frames and one for every other
//! frame that reaches a handler (`register`, `list`, `ping`, and frames refused on
//! `$default`). On AWS the stage's throttle is one budget shared by every client, so
//! without these one script could starve the whole chat.
//!
//! The buckets are kept as GCRA state (the generic cell rate algorithm): one "theoretical
//! arrival time" (`tat`) per bucket, in microseconds since the epoch. A frame arriving at
//! `now` is allowed iff `tat <= now + (burst - 1) * interval`, and then
//! `tat = max(tat, now) + interval`. That is a token bucket refilling at `per_second` up to
//! `burst`, held in one number that a store can update with a conditional write.

use crate::config::ConfigError;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webchat_shared_types::{ErrorCode, Route, ServerEvent, ServerFrame};

/// Microseconds since the Unix epoch: the unit of bucket state.
pub type Micros = i64;

const MICROS_PER_SECOND: f64 = 1_000_000.0;

/// The lowest rate a configuration may give, in frames per second.
pub const MIN_RATE_PER_SECOND: f64 = 0.000_001;
/// The highest rate a configuration may give, in frames per second.
pub const MAX_RATE_PER_SECOND: f64 = 1_000_000.0;
/// The bursts a configuration may give, in frames.
pub const MAX_BURST: u32 = 1_000_000;

/// The two buckets of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// `message` frames.
    Message,
    /// Every other frame a handler answers: `register`, `list`, `ping`, `$default`.
    Action,
}

impl Bucket {
    /// The bucket a frame on `route` takes from; `$connect` and `$disconnect` take from none.
    pub fn of(route: Route) -> Option<Bucket> {
        match route {
            Route::Message => Some(Bucket::Message),
            Route::Register
            | Route::List
            | Route::Ping
            | Route::Join
            | Route::Leave
            | Route::History
            | Route::Default => Some(Bucket::Action),
            Route::Connect | Route::Disconnect => None,
        }
    }

    /// What the frames of this bucket are called in errors.
    fn frames(self) -> &'static str {
        match self {
            Bucket::Message => "message frames",
            Bucket::Action => "frames other than message",
        }
    }
}

/// One bucket's rule: `per_second` frames on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
    burst: u32,
}

/// How long room messages are kept when nothing says otherwise.
pub const DEFAULT_HISTORY_DAYS: u32 = 7;
/// The longest retention a deployment may set (about ten years).
pub const MAX_HISTORY_DAYS: u32 = 3650;

/// A retention in days, as configured; `setting` names where it came from.
pub fn parse_history_days(setting: &str, value: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|days| (1..=MAX_HISTORY_DAYS).contains(days))
        .ok_or_else(|| {
            ConfigError::invalid(
                setting,
                value,
                format!(
                    "not a retention: give a whole number of days from 1 to {MAX_HISTORY_DAYS}"
                ),
            )
        })
}

/// Rooms with at most this many members hear every arrival and departure (`newUser`,
/// `userExit`); larger ones hear their member count instead (see [`PRESENCE_INTERVAL`]).
pub const DEFAULT_PRESENCE_LIMIT: u32 = 200;
/// The largest presence limit a deployment may set.
pub const MAX_PRESENCE_LIMIT: u32 = 1_000_000;
/// A room above the presence limit hears its member count at most this often: an
/// arrival or departure pushes it only when this long has passed since the last push
/// (and the count changed).
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(5);

/// A presence limit in members, as configured; `setting` names where it came from.
pub fn parse_presence_limit(setting: &str, value: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_PRESENCE_LIMIT).contains(limit))
        .ok_or_else(|| {
            ConfigError::invalid(
                setting,
                value,
                format!("not a member count: give a whole number from 1 to {MAX_PRESENCE_LIMIT}"),
            )
        })
}

/// A rate in frames per second, as configured; `setting` names where it came from.
pub fn parse_rate(setting: &str, value: &str) -> Result<f64, ConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|rate| (MIN_RATE_PER_SECOND..=MAX_RATE_PER_SECOND).contains(rate))
        .ok_or_else(|| {
            ConfigError::invalid(
                setting,
                value,
                format!(
                    "not a rate: give frames per second as a number from {MIN_RATE_PER_SECOND} \
                     to {MAX_RATE_PER_SECOND}, e.g. 10 or 0.5"
                ),
            )
        })
}

/// A burst in frames, as configured; `setting` names where it came from.
pub fn parse_burst(setting: &str, value: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|burst| (1..=MAX_BURST).contains(burst))
        .ok_or_else(|| {
            ConfigError::invalid(
                setting,
                value,
                format!("not a burst: give a whole number of frames from 1 to {MAX_BURST}"),
            )
        })
}

impl RateLimit {
    /// A rule; values out of range are clamped to it (configuration is checked by
    /// [`parse_rate`] and [`parse_burst`], which say what is wrong).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second.is_nan() {
            MIN_RATE_PER_SECOND
        } else {
            per_second.clamp(MIN_RATE_PER_SECOND, MAX_RATE_PER_SECOND)
        };
        RateLimit {
            per_second,
            burst: burst.clamp(1, MAX_BURST),
        }
    }

    /// Frames per second the bucket refills at.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Frames the bucket holds: how many may come at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time between two frames at the steady rate (at least 1 µs).
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a positive rate's interval in µs is far inside i64, and `as` saturates"
    )]
    pub fn interval(&self) -> Micros {
        ((MICROS_PER_SECOND / self.per_second).round() as Micros).max(1)
    }

    /// The latest `tat` at which a frame arriving at `now` is still allowed.
    pub fn latest_allowed_tat(&self, now: Micros) -> Micros {
        now + (i64::from(self.burst) - 1) * self.interval()
    }

    /// The decision for a frame arriving at `now` on a bucket whose state is `tat`
    /// (`None` for a bucket never used): the new `tat`, or how long until one more frame
    /// would be allowed.
    pub fn decide(&self, tat: Option<Micros>, now: Micros) -> Result<Micros, Duration> {
        let tat = tat.unwrap_or(now);
        let latest = self.latest_allowed_tat(now);
        if tat > latest {
            Err(self.retry_after(tat, now))
        } else {
            Ok(tat.max(now) + self.interval())
        }
    }

    /// How long a bucket at `tat` refuses frames arriving at `now` (zero if it does not).
    pub fn retry_after(&self, tat: Micros, now: Micros) -> Duration {
        let wait = tat.saturating_sub(self.latest_allowed_tat(now));
        Duration::from_micros(u64::try_from(wait).unwrap_or(0))
    }
}

/// The limits of every connection, and how long its room messages are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// For `message` frames.
    pub message: RateLimit,
    /// For every other frame that gets an answer.
    pub action: RateLimit,
    /// Room messages expire this many days after they were sent.
    pub history_days: u32,
    /// Rooms with more members than this hear counts, not each arrival and departure.
    pub presence_limit: u32,
}

/// The environment variables (Lambda) and flags (`webchat-local`) that set each limit.
pub const MESSAGE_RATE_VAR: &str = "MESSAGE_RATE_PER_SECOND";
/// Sets [`Limits::message`]'s burst.
pub const MESSAGE_BURST_VAR: &str = "MESSAGE_BURST";
/// Sets [`Limits::action`]'s rate.
pub const ACTION_RATE_VAR: &str = "ACTION_RATE_PER_SECOND";
/// Sets [`Limits::action`]'s burst.
pub const ACTION_BURST_VAR: &str = "ACTION_BURST";
/// Sets [`Limits::history_days`].
pub const HISTORY_DAYS_VAR: &str = "HISTORY_DAYS";
/// Sets [`Limits::presence_limit`].
pub const PRESENCE_LIMIT_VAR: &str = "PRESENCE_LIMIT";

impl Limits {
    /// A person typing never meets these; a script sending as fast as it can does.
    pub const DEFAULT: Limits = Limits {
        message: RateLimit {
            per_second: 10.0,
            burst: 20,
        },
        action: RateLimit {
            per_second: 20.0,
            burst: 40,
        },
        history_days: DEFAULT_HISTORY_DAYS,
        presence_limit: DEFAULT_PRESENCE_LIMIT,
    };

    /// As high as a configuration may set them: for load tests and benches, which
    /// measure what the chat can carry, not what one connection may send. Every room is
    /// within the presence limit, so each arrival is announced (the load tests check
    /// every announcement).
    pub const UNLIMITED: Limits = Limits {
        message: RateLimit {
            per_second: MAX_RATE_PER_SECOND,
            burst: MAX_BURST,
        },
        action: RateLimit {
            per_second: MAX_RATE_PER_SECOND,
            burst: MAX_BURST,
        },
        history_days: DEFAULT_HISTORY_DAYS,
        presence_limit: MAX_PRESENCE_LIMIT,
    };

    /// The limit of one bucket.
    pub fn of(&self, bucket: Bucket) -> RateLimit {
        match bucket {
            Bucket::Message => self.message,
            Bucket::Action => self.action,
        }
    }

    /// The limits from [`MESSAGE_RATE_VAR`], [`MESSAGE_BURST_VAR`], [`ACTION_RATE_VAR`],
    /// [`ACTION_BURST_VAR`] and [`HISTORY_DAYS_VAR`]; each one unset keeps its default,
    /// each one set must be valid.
    pub fn from_env() -> Result<Limits, ConfigError> {
        Limits::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`Limits::from_env`], with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
        let rate = |name: &str, default: f64| {
            var(name).map_or(Ok(default), |value| parse_rate(name, &value))
        };
        let burst = |name: &str, default: u32| {
            var(name).map_or(Ok(default), |value| parse_burst(name, &value))
        };
        let default = Limits::DEFAULT;
        Ok(Limits {
            message: RateLimit::new(
                rate(MESSAGE_RATE_VAR, default.message.per_second)?,
                burst(MESSAGE_BURST_VAR, default.message.burst)?,
            ),
            action: RateLimit::new(
                rate(ACTION_RATE_VAR, default.action.per_second)?,
                burst(ACTION_BURST_VAR, default.action.burst)?,
            ),
            history_days: var(HISTORY_DAYS_VAR).map_or(Ok(default.history_days), |value| {
                parse_history_days(HISTORY_DAYS_VAR, &value)
            })?,
            presence_limit: var(PRESENCE_LIMIT_VAR)
                .map_or(Ok(default.presence_limit), |value| {
                    parse_presence_limit(PRESENCE_LIMIT_VAR, &value)
                })?,
        })
    }

    /// The `error` that answers a frame refused by `bucket`'s limit.
    pub fn refusal(
        &self,
        bucket: Bucket,
        retry_after: Duration,
        request_id: Option<String>,
    ) -> ServerFrame {
        let limit = self.of(bucket);
        // Rounded up: a client that waits exactly this long is allowed.
        let retry_after_ms =
            u64::try_from(retry_after.as_micros().div_ceil(1000).max(1)).unwrap_or(u64::MAX);
        ServerFrame {
            event: ServerEvent::Error {
                code: ErrorCode::RateLimited,
                message: format!(
                    "too many {} on this connection (at most {} per second, {} at once); \
                     send again in {retry_after_ms} ms",
                    bucket.frames(),
                    limit.per_second,
                    limit.burst
                ),
                retry_after_ms: Some(retry_after_ms),
            },
            request_id,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s (burst {})", self.per_second, self.burst)
    }
}

/// What a store decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit; the bucket has taken the frame.
    Allowed,
    /// Over the limit: nothing may be done for this frame; one more frame of its kind
    /// would be allowed after this long.
    Limited {
        /// How long until one more frame of its kind would be allowed.
        retry_after: Duration,
    },
    /// The connection has no row (closed, or never recorded): there is no bucket to take
    /// from, and the frame's own handling finds the connection gone.
    Gone,
}

/// The time rate limits are measured against.
pub trait Clock: Send + Sync {
    /// Microseconds since the Unix epoch.
    fn now(&self) -> Micros;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_micros()
            .try_into()
            .unwrap_or(Micros::MAX)
    }
}

/// A clock that moves only when told to, for tests of the limits.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock that reads `now` until it is advanced.
    pub fn new(now: Micros) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(now))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            Micros::try_from(by.as_micros()).unwrap_or(Micros::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Micros {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Micros = 1_764_316_800_000_000;

    #[test]
    fn a_fresh_bucket_allows_exactly_its_burst_then_refills_at_its_rate() {
        let limit = RateLimit::new(10.0, 20);
        let mut tat = None;
        for _ in 0..20 {
            tat = Some(limit.decide(tat, NOW).expect("within the burst"));
        }
        let wait = limit
            .decide(tat, NOW)
            .expect_err("the 21st at once is limited");
        assert_eq!(wait, Duration::from_millis(100));
        assert!(limit.decide(tat, NOW + 99_999).is_err());
        let tat = limit
            .decide(tat, NOW + 100_000)
            .expect("one more after 100 ms");
        assert!(limit.decide(Some(tat), NOW + 100_000).is_err());
    }

    #[test]
    fn an_idle_bucket_does_not_save_more_than_its_burst() {
        let limit = RateLimit::new(10.0, 3);
        let mut tat = Some(NOW - 3_600_000_000);
        for _ in 0..3 {
            tat = Some(limit.decide(tat, NOW).expect("within the burst"));
        }
        assert!(limit.decide(tat, NOW).is_err());
    }

    fn from_pairs(pairs: &[(&str, &str)]) -> Result<Limits, ConfigError> {
        Limits::from_vars(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn settings_are_checked_and_named() {
        assert_eq!(from_pairs(&[]), Ok(Limits::DEFAULT));
        let custom =
            from_pairs(&[("MESSAGE_RATE_PER_SECOND", "0.5"), ("ACTION_BURST", "7")]).unwrap();
        assert_eq!(custom.message, RateLimit::new(0.5, 20));
        assert_eq!(custom.action, RateLimit::new(20.0, 7));
        assert_eq!(
            from_pairs(&[("PRESENCE_LIMIT", "3")])
                .unwrap()
                .presence_limit,
            3
        );
        for (name, value) in [
            ("PRESENCE_LIMIT", "0"),
            ("PRESENCE_LIMIT", "many"),
            ("PRESENCE_LIMIT", "-5"),
            ("MESSAGE_RATE_PER_SECOND", "fast"),
            ("MESSAGE_RATE_PER_SECOND", "0"),
            ("ACTION_RATE_PER_SECOND", "NaN"),
            ("ACTION_RATE_PER_SECOND", "-1"),
            ("MESSAGE_BURST", "0"),
            ("ACTION_BURST", "2.5"),
            ("ACTION_BURST", ""),
        ] {
            let err = from_pairs(&[(name, value)]).expect_err(value).to_string();
            assert!(err.starts_with(&format!("{name}=")), "{err}");
        }
    }

    #[test]
    fn the_refusal_carries_the_wait_in_whole_milliseconds_rounded_up() {
        let frame = Limits::DEFAULT.refusal(
            Bucket::Message,
            Duration::from_micros(1_500),
            Some("r".into()),
        );
        let json: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(json["code"], "rate_limited");
        assert_eq!(json["retryAfterMs"], 2);
        assert_eq!(json["requestId"], "r");
    }
}
