//! Field readers that never fail: a field with an odd type reads as absent, so that the rest of
//! the event stays typed (Vonage's own samples mix numbers and their text, and a new field type
//! must not turn a whole callback into `Other`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Any field: its type when the JSON fits it, else `None`.
pub(super) fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// A count or a Unix time: a non-negative integer, or a float or text that holds one
/// (`1437676551000`, `1437676551000.0`, `"1437676551000"`); anything else `None`.
pub(super) fn number<'de, D>(d: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Text, or a number written as text (`"700"` and `700` alike); anything else `None`.
pub(super) fn text<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::number")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "super::text")]
        s: Option<String>,
        #[serde(default, deserialize_with = "super::opt")]
        b: Option<bool>,
    }

    fn read(json: &str) -> (Option<u64>, Option<String>, Option<bool>) {
        let t: T = serde_json::from_str(json).unwrap();
        (t.n, t.s, t.b)
    }

    #[test]
    fn odd_types_read_as_absent_never_as_errors() {
        assert_eq!(
            read(r#"{"n":12,"s":"a","b":true}"#),
            (Some(12), Some("a".into()), Some(true))
        );
        assert_eq!(
            read(r#"{"n":12.0,"s":700,"b":"yes"}"#),
            (Some(12), Some("700".into()), None)
        );
        assert_eq!(read(r#"{"n":"12","s":null,"b":1}"#), (Some(12), None, None));
        for odd in ["-1", "1.5", "\"x\"", "[1]", "{}", "true", "null", "1e300"] {
            assert_eq!(read(&format!(r#"{{"n":{odd}}}"#)).0, None, "{odd}");
        }
        assert_eq!(read("{}"), (None, None, None));
    }
}
