//! The parameters of an SMS API request, read strictly from a query string, a form body or a
//! JSON body: a name given twice, a `%` not followed by two hex digits, text that is not UTF-8
//! once decoded, or a JSON value that is not a string or a number is refused, never guessed at.

use std::fmt;

use percent_encoding::percent_decode;
use serde::de::{Deserializer, MapAccess, Visitor};

/// Why parameters could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamsError {
    /// This name appears twice: which value was signed?
    Duplicate(String),
    /// A name or value is not UTF-8 once percent-decoded.
    NotUtf8,
    /// A `%` that is not followed by two hex digits (browsers would keep it as text; a
    /// signer may have meant either).
    BadPercent,
    /// A JSON body that is not one object of strings and numbers (the value named is not).
    NotScalar(Option<String>),
    /// Parameters in the query and in the body at once (or a GET with a body).
    Mixed,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::Duplicate(name) => write!(f, "parameter {name:?} is given twice"),
            ParamsError::NotUtf8 => f.write_str("a parameter is not UTF-8 once decoded"),
            ParamsError::BadPercent => f.write_str("a % is not followed by two hex digits"),
            ParamsError::NotScalar(Some(name)) => {
                write!(f, "JSON parameter {name:?} is not a string or a number")
            }
            ParamsError::NotScalar(None) => f.write_str("the JSON body is not one object"),
            ParamsError::Mixed => {
                f.write_str("parameters in both the query and the body: which were signed?")
            }
        }
    }
}

impl std::error::Error for ParamsError {}

/// An SMS request's parameters (names and values decoded), in the order received.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SmsParams {
    pairs: Vec<(String, String)>,
}

impl SmsParams {
    /// From `name=value` pairs (names must differ; checked by the readers, not here).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }

    /// From a query string (without `?`) or an `application/x-www-form-urlencoded` body: `+` is
    /// a space and `%XX` a byte, as browsers and Vonage encode them.
    pub fn from_form(encoded: &[u8]) -> Result<Self, ParamsError> {
        let mut params = Self::default();
        for pair in encoded.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            params.push(decode(name)?, decode(value)?)?;
        }
        Ok(params)
    }

    /// From a JSON body: one object whose values are strings or numbers (a number stands for its
    /// text as written: `2100` is `"2100"`).
    pub fn from_json(body: &[u8]) -> Result<Self, ParamsError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let params = de
            .deserialize_map(ParamsVisitor)
            .map_err(|_| ParamsError::NotScalar(None))?;
        de.end().map_err(|_| ParamsError::NotScalar(None))?;
        params
    }

    fn push(&mut self, name: String, value: String) -> Result<(), ParamsError> {
        if self.get(&name).is_some() {
            return Err(ParamsError::Duplicate(name));
        }
        self.pairs.push((name, value));
        Ok(())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Sets `name` (replacing its value) or adds it: for signing in tests.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((name, value)),
        }
    }

    /// The parameters as a form body or query string, percent-encoded.
    pub fn to_form(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.iter() {
            out.append_pair(name, value);
        }
        out.finish()
    }
}

impl fmt::Debug for SmsParams {
    /// Names only: values are message text and phone numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsParams")
            .field(
                "names",
                &self.pairs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn decode(encoded: &[u8]) -> Result<String, ParamsError> {
    let escapes = encoded.iter().enumerate().filter(|(_, &b)| b == b'%');
    for (i, _) in escapes {
        match encoded.get(i + 1..i + 3) {
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {}
            _ => return Err(ParamsError::BadPercent),
        }
    }
    let spaced: Vec<u8> = encoded
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| ParamsError::NotUtf8)
}

/// Reads a JSON object into pairs, refusing duplicates and values that are not scalars.
struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Result<SmsParams, ParamsError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings and numbers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // The whole object is read even after a fault, so that the parser sees it end and the
        // first fault is the one reported.
        let mut params = Ok(SmsParams::default());
        while let Some(name) = map.next_key::<String>()? {
            let value = match map.next_value::<serde_json::Value>()? {
                serde_json::Value::String(s) => Ok(s),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                _ => Err(ParamsError::NotScalar(Some(name.clone()))),
            };
            if let Ok(p) = &mut params {
                if let Err(err) = value.and_then(|value| p.push(name, value)) {
                    params = Err(err);
                }
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_refuse_duplicates() {
        let p = SmsParams::from_form(b"text=Hello+W%C3%B6rld%21&to=447700900000&flag").unwrap();
        assert_eq!(p.get("text"), Some("Hello Wörld!"));
        assert_eq!(p.get("flag"), Some(""));
        assert_eq!(p.len(), 3);
        assert_eq!(
            SmsParams::from_form(b"a=1&a=2"),
            Err(ParamsError::Duplicate("a".into()))
        );
        assert_eq!(SmsParams::from_form(b"a=%ff"), Err(ParamsError::NotUtf8));
        assert_eq!(SmsParams::from_form(b"a=%2b").unwrap().get("a"), Some("+"));
        for bad in [&b"a=%zz"[..], b"a=%", b"a=%2", b"a%=1", b"a=100%"] {
            assert_eq!(
                SmsParams::from_form(bad),
                Err(ParamsError::BadPercent),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_takes_strings_and_numbers_only() {
        let p = SmsParams::from_json(br#"{"a":"alphabet","timestamp":2100}"#).unwrap();
        assert_eq!(p.get("timestamp"), Some("2100"));
        assert_eq!(
            SmsParams::from_json(br#"{"a":true}"#),
            Err(ParamsError::NotScalar(Some("a".into())))
        );
        assert_eq!(
            SmsParams::from_json(br#"{"a":"1","a":"2"}"#),
            Err(ParamsError::Duplicate("a".into()))
        );
        for bad in [&b"[1]"[..], b"{}x", b"\"a\"", b"{\"a\":{\"b\":1}}"] {
            assert!(SmsParams::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_names_not_values() {
        let p = SmsParams::from_pairs([("text", "a secret message")]);
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn a_form_round_trips() {
        let p = SmsParams::from_pairs([("text", "a&b=c d+é"), ("to", "1")]);
        assert_eq!(SmsParams::from_form(p.to_form().as_bytes()).unwrap(), p);
    }
}
