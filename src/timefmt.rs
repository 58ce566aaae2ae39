//! Timestamps written the way chrono writes them (RFC 3339, `Z`, the
//! fraction only as long as needed), without the formatting machinery.
//!
//! chrono serialises a `DateTime` through `Display` and `collect_str`, which
//! costs about 8% of the journal writer's time: every decision, flow, step
//! and review row holds several timestamps. Reading them back is chrono's
//! own `Deserialize`; the text is the same.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// Writes `value` as `n` decimal digits at `at`.
fn digits(buf: &mut [u8; 40], at: usize, n: usize, mut value: u32) {
    for i in (0..n).rev() {
        buf[at + i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Writes `t` into `buf`, returning its length; `None` where chrono writes
/// something else (a year before 0 or after 9999, a leap second).
fn format(t: &DateTime<Utc>, buf: &mut [u8; 40]) -> Option<usize> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(buf, 0, 4, year);
    buf[4] = b'-';
    digits(buf, 5, 2, t.month());
    buf[7] = b'-';
    digits(buf, 8, 2, t.day());
    buf[10] = b'T';
    digits(buf, 11, 2, t.hour());
    buf[13] = b':';
    digits(buf, 14, 2, t.minute());
    buf[16] = b':';
    digits(buf, 17, 2, t.second());
    let mut at = 19;
    let (fraction, n) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if n > 0 {
        buf[at] = b'.';
        digits(buf, at + 1, n, fraction);
        at += 1 + n;
    }
    buf[at] = b'Z';
    Some(at + 1)
}

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 40];
    match format(t, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => serde::Serialize::serialize(t, serializer),
    }
}

/// For `Option<DateTime<Utc>>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(serde::Serialize)]
    struct Fast(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 3, 31, 8, 30, 56).unwrap();
        let mut cases = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(12000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-5, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [
            1,
            10,
            999,
            1_000,
            118_000_000,
            118_500_000,
            123_456_789,
            999_999_999,
        ] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        for t in cases {
            let fast = serde_json::to_string(&Fast(t)).unwrap();
            let chrono = serde_json::to_string(&t).unwrap();
            assert_eq!(fast, chrono);
            let back: DateTime<Utc> = serde_json::from_str(&fast).unwrap();
            assert_eq!(back, t);
        }
    }
}
