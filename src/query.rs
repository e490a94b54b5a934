//! The signed payload of a callback without a body: Voice's `answer_url` and the other GET
//! webhooks sign their query parameters instead.

/// The bytes Vonage hashes into `payload_hash` for a GET webhook: the query parameters, decoded,
/// in their original order, as a compact JSON object of strings.
///
/// ```
/// use vonage_secure_callbacks::query_payload;
/// assert_eq!(
///     query_payload("to=447700900000&from=447700900001&uuid=aaaa-bbbb"),
///     r#"{"to":"447700900000","from":"447700900001","uuid":"aaaa-bbbb"}"#
/// );
/// assert_eq!(query_payload("name=J%C3%BCrgen+S"), r#"{"name":"Jürgen S"}"#);
/// assert_eq!(query_payload(""), "{}");
/// ```
///
/// A key that appears twice appears twice in the object, in place, as it did in the query.
pub fn query_payload(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 16);
    out.push('{');
    for (i, (key, value)) in form_urlencoded::parse(query.as_bytes()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, &key);
        out.push(':');
        push_json_string(&mut out, &value);
    }
    out.push('}');
    out
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's string escaping is JSON.stringify's for every string a query can carry.
    out.push_str(&serde_json::Value::from(s).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_json_stringify() {
        assert_eq!(query_payload("q=a%22b%5Cc%0A"), r#"{"q":"a\"b\\c\n"}"#);
        assert_eq!(
            query_payload("url=https%3A%2F%2Fx.io%2Fa"),
            r#"{"url":"https://x.io/a"}"#
        );
        assert_eq!(query_payload("a=1&a=2"), r#"{"a":"1","a":"2"}"#);
        assert_eq!(query_payload("flag"), r#"{"flag":""}"#);
    }
}
