//! The text of a log line, as tracing-subscriber's default format lays it out (time, level,
//! target, message, `name=value` fields; no colour), written straight into the line. The
//! general formatter dresses every part for colour and escapes it through layers of `fmt`: for
//! the one line of each callback that was the largest part of the proxy's own work.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::proxy::digits;

/// The proxy's text lines.
pub struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut line: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write_time(&mut line, SystemTime::now())?;
        line.write_str(match *meta.level() {
            Level::ERROR => " ERROR ",
            Level::WARN => "  WARN ",
            Level::INFO => "  INFO ",
            Level::DEBUG => " DEBUG ",
            Level::TRACE => " TRACE ",
        })?;
        line.write_str(meta.target())?;
        line.write_str(":")?;
        let mut fields = Fields {
            line: &mut line,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        line.write_char('\n')
    }
}

/// Each field after a space: the message as it is, the others as `name=value`; text from a
/// request (a token's `api_key`, say) can never break the line, since control characters are
/// escaped.
struct Fields<'w, 'a> {
    line: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = if field.name() == "message" {
                write!(Escaped(&mut *self.line), " {value}")
            } else {
                write_quoted(self.line, field.name(), value)
            };
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = write_u64(self.line, field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = if field.name() == "message" {
                write!(Escaped(&mut *self.line), " {value:?}")
            } else {
                write!(Escaped(&mut *self.line), " {}={value:?}", field.name())
            };
        }
    }
}

/// ` name="value"`, quoted and escaped as tracing's own format shows strings (`Debug`); the
/// common value, printable ASCII with no quote or backslash, as it is, without `Debug`'s walk.
pub(super) fn write_quoted(line: &mut impl Write, name: &str, value: &str) -> fmt::Result {
    // A fold, not `all`: with no early exit the compiler checks many bytes at a time.
    let plain = value.bytes().fold(true, |plain, b| {
        plain & (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        line.write_str(" ")?;
        line.write_str(name)?;
        line.write_str("=\"")?;
        line.write_str(value)?;
        line.write_str("\"")
    } else {
        write!(line, " {name}={value:?}")
    }
}

/// ` name=value` for a number (a duration in milliseconds, say).
pub(super) fn write_u64(line: &mut impl Write, name: &str, value: u64) -> fmt::Result {
    line.write_str(" ")?;
    line.write_str(name)?;
    line.write_str("=")?;
    write_digits(line, value)
}

/// A number's digits, written by hand.
pub(super) fn write_digits(line: &mut impl Write, value: u64) -> fmt::Result {
    let mut digits = [b'0'; 20];
    let start = digits::fill(&mut digits, value);
    line.write_str(std::str::from_utf8(&digits[start..]).map_err(|_| fmt::Error)?)
}

/// Writes through, with control characters (a newline, an escape) as Rust escapes them.
struct Escaped<'w, W>(&'w mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, c) in text.char_indices() {
            if c.is_control() {
                self.0.write_str(&text[plain..at])?;
                write!(self.0, "{}", c.escape_default())?;
                plain = at + c.len_utf8();
            }
        }
        self.0.write_str(&text[plain..])
    }
}

/// `now` in RFC 3339, UTC, to the microsecond, as tracing's own format writes it.
pub(super) fn write_time(line: &mut impl Write, now: SystemTime) -> fmt::Result {
    thread_local! {
        /// The date and time to the second last written, and that second: built once a second.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            let (year, month, day) = civil(secs / 86_400);
            let time = secs % 86_400;
            text.clear();
            write!(
                text,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                time / 3600,
                time / 60 % 60,
                time % 60
            )?;
            *second = secs;
        }
        line.write_str(text)
    })?;
    let mut fraction = *b".000000Z";
    digits::fill(&mut fraction[1..7], u64::from(since.subsec_micros()));
    line.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// The civil date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let m = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * m + 2) / 5 + 1;
    let month = if m < 10 { m + 3 } else { m - 9 };
    (year_of_era + era * 400 + u64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn time(secs: u64, micros: u64) -> String {
        let mut text = String::new();
        let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
        write_time(&mut text, at).unwrap();
        text
    }

    #[test]
    fn times_are_rfc_3339_in_utc() {
        assert_eq!(time(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(time(1_800_000_000, 42), "2027-01-15T08:00:00.000042Z");
        // The same second again: its text is kept, the fraction is new.
        assert_eq!(time(1_800_000_000, 7), "2027-01-15T08:00:00.000007Z");
        assert_eq!(time(951_782_400, 999_999), "2000-02-29T00:00:00.999999Z");
        assert_eq!(time(1_798_675_199, 0), "2026-12-30T23:59:59.000000Z");
        assert_eq!(time(4_102_444_800, 0), "2100-01-01T00:00:00.000000Z");
    }

    #[test]
    fn strings_are_quoted_as_debug_quotes_them() {
        for value in [
            "a1b2c3d4",
            "",
            "with space",
            "q\"uote",
            "back\\slash",
            "k\n1",
            "é",
            "\u{7f}",
        ] {
            let mut text = String::new();
            write_quoted(&mut Writer::new(&mut text), "f", value).unwrap();
            assert_eq!(text, format!(" f={value:?}"));
        }
    }

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for value in [0, 7, 10, 99, 1_000, 4_294_967_296, u64::MAX] {
            let mut text = String::new();
            write_u64(&mut Writer::new(&mut text), "ms", value).unwrap();
            assert_eq!(text, format!(" ms={value}"));
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut text = String::new();
        write!(Escaped(&mut text), "a\nb\u{1b}[31mc\té").unwrap();
        assert_eq!(text, r"a\nb\u{1b}[31mc\té");
    }

    /// A line as the proxy writes it, read back from a real subscriber.
    #[test]
    fn a_line_has_time_level_target_message_and_fields() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Text)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let status = http::StatusCode::ACCEPTED;
            tracing::info!(target: "proxy", api_key = "k\n1", upstream = %status, upstream_ms = 3u64, "forwarded");
            tracing::warn!(target: "lib", reason = "stale_token", keys = ?["a"], "callback {}", "rejected");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        // The time is 27 characters (the tests above check what they say).
        assert_eq!(lines[0].as_bytes()[26], b'Z', "{text}");
        assert_eq!(
            &lines[0][27..],
            r#"  INFO proxy: forwarded api_key="k\n1" upstream=202 Accepted upstream_ms=3"#
        );
        assert_eq!(
            &lines[1][27..],
            r#"  WARN lib: callback rejected reason="stale_token" keys=["a"]"#
        );
    }
}
