//! Which request targets may be forwarded: origin-form only (RFC 9112 §3.2.1), with no segment
//! that an upstream could read as a step up or across its path, so that the upstream URL's path
//! prefix confines every forwarded request. Everything else is refused before the verifier, the
//! replay store or the upstream sees it.

use http::{Method, Uri};

/// Whether `method` and `uri` make a target the proxy forwards.
pub fn is_confined(method: &Method, uri: &Uri) -> bool {
    // CONNECT (authority-form), absolute-form and `*` (asterisk-form) name no path of ours.
    if *method == Method::CONNECT || uri.scheme().is_some() || uri.authority().is_some() {
        return false;
    }
    let path = uri.path();
    path.starts_with('/') && path.split('/').all(is_plain_segment)
}

/// A segment that is neither `.` nor `..` in any spelling, and hides no separator: `%2e` is a
/// dot and `%2f`/`%5c` a slash to many servers, and `\` a slash to some.
fn is_plain_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut dots = 0;
    let mut only_dots = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return false,
            b'.' => dots += 1,
            b'%' if bytes.len() >= i + 3 => {
                match [bytes[i + 1], bytes[i + 2].to_ascii_lowercase()] {
                    [b'2', b'f'] | [b'5', b'c'] => return false,
                    [b'2', b'e'] => dots += 1,
                    _ => only_dots = false,
                }
                i += 2;
            }
            _ => only_dots = false,
        }
        i += 1;
    }
    !(only_dots && (dots == 1 || dots == 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined(method: &str, target: &str) -> bool {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        is_confined(&method, &target.parse().unwrap())
    }

    #[test]
    fn origin_form_paths_pass() {
        for target in [
            "/",
            "/vonage/events",
            "/a/b.json?x=../y",
            "/v/...",
            "/v/.well-known",
            "/v/a..b",
            "/v//double",
        ] {
            assert!(confined("POST", target), "{target}");
        }
    }

    #[test]
    fn other_forms_and_dot_segments_are_refused() {
        assert!(!confined("CONNECT", "example.com:443"));
        assert!(!confined("POST", "http://example.com/vonage"));
        assert!(!confined("OPTIONS", "*"));
        for target in [
            "/../admin",
            "/vonage/../../admin",
            "/vonage/./x",
            "/vonage/..",
            "/vonage/%2e%2e/admin",
            "/vonage/%2E./admin",
            "/vonage/.%2e",
            "/vonage/%2e",
            "/vonage/..%2fadmin",
            "/vonage/..%5Cadmin",
            "/vonage/..\\admin",
        ] {
            let Ok(uri) = target.parse::<Uri>() else {
                continue; // http itself refuses it: hyper answers 400 before the proxy.
            };
            assert!(!is_confined(&Method::POST, &uri), "{target}");
        }
    }
}
