//! The bounds every signal keeps, however it came in: lengths of its keys,
//! the span of time it may claim, and the size of what its `data` holds.
//!
//! `Signal::check` applies them at intake and again when the journal is
//! read back, so a signal that was accepted can always be read: a time of
//! year 10000 (an offset of -23:59 on 9999-12-31, say) would be journaled
//! in a form the journal's own reader refuses, and a restart would stop
//! on it.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::SignalError;

/// Longest accepted `id`, `type`, `source` and `subject`, in bytes. An id
/// or type is a key, not a document; anything longer is a mistake or an
/// attack on the journal's indexes.
pub const MAX_ID: usize = 512;
pub const MAX_TYPE: usize = 256;
pub const MAX_SOURCE: usize = 1024;
pub const MAX_SUBJECT: usize = 1024;
/// Most extension attributes one event may carry.
pub const MAX_EXTENSIONS: usize = 64;
/// Most elements of one array, or members of one object, anywhere in a
/// signal's `data`: what a policy's comprehension walks over.
pub const MAX_COLLECTION: usize = 10_000;
/// Deepest nesting of arrays and objects in a signal's `data`.
pub const MAX_DEPTH: usize = 64;

/// The earliest time a signal may carry: the Unix epoch.
pub fn earliest() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

/// The latest time a signal may carry: the start of year 9000. The journal
/// writes four-digit years, and what is derived from a signal's time (a
/// deadline, a review window, an SLA) must stay within them.
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Refuses a time outside [`earliest`, `latest`), naming `field`.
pub fn check_time(field: impl Into<super::Field>, time: DateTime<Utc>) -> Result<(), SignalError> {
    if time < earliest() || time >= latest() {
        return Err(SignalError::invalid(
            field,
            format!(
                "{} (in UTC) is outside the times signalbox keeps: from 1970-01-01T00:00:00Z \
                 up to 9000-01-01T00:00:00Z",
                time.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

/// Refuses `data` holding an array or object of more than
/// `MAX_COLLECTION` entries, or nested deeper than `MAX_DEPTH`, naming the
/// path of the first one found (`data.items`, `data.a[3].b`).
pub fn check_data(data: &Value) -> Result<(), SignalError> {
    walk(data, &mut String::from("data"), 0)
}

fn walk(value: &Value, path: &mut String, depth: usize) -> Result<(), SignalError> {
    let (len, deeper) = match value {
        Value::Array(items) => (items.len(), !items.is_empty()),
        Value::Object(members) => (members.len(), !members.is_empty()),
        _ => return Ok(()),
    };
    if depth >= MAX_DEPTH && deeper {
        return Err(SignalError::invalid(
            path.clone(),
            format!("nested deeper than {MAX_DEPTH} arrays and objects"),
        ));
    }
    if len > MAX_COLLECTION {
        return Err(SignalError::invalid(
            path.clone(),
            format!("{len} entries; at most {MAX_COLLECTION} are accepted in one array or object"),
        ));
    }
    let at = path.len();
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if matches!(item, Value::Array(_) | Value::Object(_)) {
                    path.push_str(&format!("[{i}]"));
                    walk(item, path, depth + 1)?;
                    path.truncate(at);
                }
            }
        }
        Value::Object(members) => {
            for (name, item) in members {
                if matches!(item, Value::Array(_) | Value::Object(_)) {
                    path.push('.');
                    path.push_str(name);
                    walk(item, path, depth + 1)?;
                    path.truncate(at);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_the_journal_cannot_keep_are_refused_by_name() {
        let far = DateTime::parse_from_rfc3339("9999-12-31T23:59:59-23:59")
            .map(|t| t.to_utc())
            .expect("a valid RFC 3339 text");
        let e = check_time("time", far).expect_err("year 10000 refused");
        assert!(e.to_string().contains("`time`"), "{e}");
        let early = DateTime::parse_from_rfc3339("0000-01-01T00:00:00+23:59")
            .map(|t| t.to_utc())
            .expect("a valid RFC 3339 text");
        assert!(check_time("time", early).is_err());
        assert!(check_time("time", earliest()).is_ok());
        assert!(check_time("time", latest()).is_err());
        assert!(check_time("time", latest() - chrono::Duration::seconds(1)).is_ok());
    }

    #[test]
    fn collections_are_bounded_and_named_by_path() {
        let big: Vec<u32> = (0..=MAX_COLLECTION as u32).collect();
        let e = check_data(&json!({"a": [{"items": big}]})).expect_err("too many items");
        assert!(e.to_string().contains("`data.a[0].items`"), "{e}");
        let mut deep = json!(1);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(check_data(&deep).is_err());
        assert!(check_data(&json!({"items": [1, 2, 3], "x": {"y": []}})).is_ok());
    }
}
