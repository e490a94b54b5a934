//! The line each forwarded callback gets, written straight into the batch: laid out exactly
//! as tracing's lines are (text or JSON) and filtered by `RUST_LOG` as they are, but without
//! tracing's event machinery, whose field visits and `fmt` calls were 3 600 instructions per
//! callback, the largest part of the forwarder's own work.

use std::fmt::{self, Write};
use std::time::SystemTime;

use tracing::Level;

use super::batch::Batch;
use super::text::{write_digits, write_quoted, write_time, write_u64};

/// The target the proxy's lines are logged under.
pub const TARGET: &str = "vonage_callbacks::proxy";

/// Where the forwarded callbacks' lines go, and in which layout.
#[derive(Clone)]
pub struct Access {
    batch: Batch,
    json: bool,
}

/// One forwarded callback, as its line tells it.
pub struct Forwarded<'a> {
    pub api_key: &'a str,
    /// The token's `jti`, or the SMS's replay id.
    pub id: &'a str,
    /// The upstream's status code, `unreachable` or `timeout`.
    pub upstream: &'a str,
    pub upstream_ms: u64,
}

impl Access {
    pub fn new(batch: Batch, json: bool) -> Self {
        Self { batch, json }
    }

    /// Logs `forwarded` at info, unless `RUST_LOG` leaves that out.
    pub fn forwarded(&self, forwarded: &Forwarded<'_>) {
        if !tracing::enabled!(target: TARGET, Level::INFO) {
            return;
        }
        let now = SystemTime::now();
        self.batch.add(|lines| {
            let line = &mut LineBytes(lines);
            if self.json {
                json(line, now, forwarded)
            } else {
                text(line, now, forwarded)
            }
        });
    }
}

/// `time  INFO target: forwarded api_key="…" id="…" upstream=200 upstream_ms=3`, as the text
/// layout writes an event with those fields.
fn text(line: &mut LineBytes<'_>, now: SystemTime, forwarded: &Forwarded<'_>) -> fmt::Result {
    write_time(line, now)?;
    line.write_str("  INFO ")?;
    line.write_str(TARGET)?;
    line.write_str(": forwarded")?;
    write_quoted(line, "api_key", forwarded.api_key)?;
    write_quoted(line, "id", forwarded.id)?;
    // The proxy's own word or digits: nothing to quote or escape.
    line.write_str(" upstream=")?;
    line.write_str(forwarded.upstream)?;
    write_u64(line, "upstream_ms", forwarded.upstream_ms)?;
    line.write_char('\n')
}

/// The object tracing-subscriber's JSON layout writes for the same event.
fn json(line: &mut LineBytes<'_>, now: SystemTime, forwarded: &Forwarded<'_>) -> fmt::Result {
    line.write_str(r#"{"timestamp":""#)?;
    write_time(line, now)?;
    line.write_str(r#"","level":"INFO","fields":{"message":"forwarded","api_key":"#)?;
    json_string(line, forwarded.api_key)?;
    line.write_str(r#","id":"#)?;
    json_string(line, forwarded.id)?;
    line.write_str(r#","upstream":"#)?;
    json_string(line, forwarded.upstream)?;
    line.write_str(r#","upstream_ms":"#)?;
    write_digits(line, forwarded.upstream_ms)?;
    line.write_str(r#"},"target":""#)?;
    line.write_str(TARGET)?;
    line.write_str("\"}\n")
}

/// `value` as a JSON string, escaped as serde_json escapes it (which tracing's layout uses).
fn json_string(line: &mut LineBytes<'_>, value: &str) -> fmt::Result {
    serde_json::to_writer(&mut *line.0, value).map_err(|_| fmt::Error)
}

/// A line's text, written into the batch's bytes.
struct LineBytes<'a>(&'a mut Vec<u8>);

impl Write for LineBytes<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::EnvFilter;

    /// What `forwarded` writes, and what tracing writes for the same event through the log's
    /// own subscriber, each with its time taken out (27 characters, checked in `text`).
    fn both(json: bool, filter: &str, forwarded: &Forwarded<'_>) -> (String, String) {
        let straight = Batch::default();
        let traced = Batch::default();
        let access = Access::new(straight.clone(), json);
        let subscriber = super::super::subscriber(&traced, json, EnvFilter::new(filter));
        tracing::subscriber::with_default(subscriber, || {
            access.forwarded(forwarded);
            tracing::info!(
                target: TARGET,
                api_key = forwarded.api_key,
                id = forwarded.id,
                upstream = forwarded.upstream,
                upstream_ms = forwarded.upstream_ms,
                "forwarded"
            );
        });
        // The time is the first 27 characters of a text line, and a JSON object's `timestamp`.
        let untimed = |batch: &Batch| {
            let line = String::from_utf8(batch.gathered()).unwrap();
            match (line.len() > 27, json) {
                (false, _) => line,
                (true, false) => line[27..].to_owned(),
                (true, true) => {
                    let mut object: serde_json::Value = serde_json::from_str(&line).unwrap();
                    object.as_object_mut().unwrap().remove("timestamp").unwrap();
                    format!("{object}\n")
                }
            }
        };
        (untimed(&straight), untimed(&traced))
    }

    fn at_fixed_time<'a>(api_key: &'a str, id: &'a str, upstream: &'a str) -> Forwarded<'a> {
        Forwarded {
            api_key,
            id,
            upstream,
            upstream_ms: 1_234,
        }
    }

    #[test]
    fn the_line_is_the_one_tracing_writes_in_each_layout() {
        let cases = [
            at_fixed_time("47123456", "7afd745e-6745-46f4-a695-f35f8fd3454a", "200"),
            at_fixed_time("k\n1\u{1b}[31m", "q\"uote\\é", "timeout"),
            at_fixed_time("", "", "unreachable"),
        ];
        for json in [false, true] {
            for forwarded in &cases {
                let (straight, traced) = both(json, "info", forwarded);
                assert!(straight.ends_with('\n') && straight.lines().count() == 1);
                if json {
                    // The same object (compared as values: the same keys, the same escapes
                    // undone, the number a number).
                    let a: serde_json::Value = serde_json::from_str(&straight).unwrap();
                    let b: serde_json::Value = serde_json::from_str(&traced).unwrap();
                    assert_eq!(a, b, "{straight}{traced}");
                } else {
                    // tracing's text layout writes a string field quoted; the proxy's word for
                    // the upstream is its own, written as `Display` wrote it before.
                    let traced = traced.replace(
                        &format!("upstream={:?}", forwarded.upstream),
                        &format!("upstream={}", forwarded.upstream),
                    );
                    assert_eq!(straight, traced);
                }
            }
        }
    }

    #[test]
    fn the_line_keeps_its_time() {
        let batch = Batch::default();
        let access = Access::new(batch.clone(), false);
        let subscriber = super::super::subscriber(&Batch::default(), false, EnvFilter::new("info"));
        let before = SystemTime::now();
        tracing::subscriber::with_default(subscriber, || {
            access.forwarded(&at_fixed_time("k", "i", "200"));
        });
        let after = SystemTime::now();
        let line = String::from_utf8(batch.gathered()).unwrap();
        let second = |at: SystemTime| {
            let mut text = String::new();
            write_time(&mut text, at).unwrap();
            text[..19].to_owned()
        };
        // Its second is the clock's, read while it was written.
        assert!(
            [second(before), second(after)].contains(&line[..19].to_owned()),
            "{line}"
        );
        assert_eq!(&line[26..], "Z  INFO vonage_callbacks::proxy: forwarded api_key=\"k\" id=\"i\" upstream=200 upstream_ms=1234\n");
    }

    #[test]
    fn rust_log_leaves_it_out_as_it_does_other_lines() {
        for json in [false, true] {
            let (straight, traced) = both(json, "warn", &at_fixed_time("k", "i", "200"));
            assert_eq!((straight.as_str(), traced.as_str()), ("", ""));
            let (straight, _) = both(
                json,
                "vonage_callbacks::proxy=off,info",
                &at_fixed_time("k", "i", "200"),
            );
            assert_eq!(straight, "");
        }
    }
}
