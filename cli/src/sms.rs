//! `verify-sms` and `sign-sms`: the SMS API's `sig` scheme. `verify-sms` prints the library's
//! report ([`SmsVerifier::explain`]) of a request given as its query, form body or JSON body;
//! `sign-sms` signs parameters by a method.

use std::path::PathBuf;

use http::{header, HeaderMap, HeaderValue, Method};
use vonage_secure_callbacks::sms::{SignatureMethod, SmsParams, SmsVerifier, VerifiedSms};
use vonage_secure_callbacks::{Check, Clock, FixedClock, Rejection, Report, SystemClock};

use crate::keys::KeyArgs;
use crate::report::{failed, print_checks, print_verdict, Line};
use crate::{read_input, Error};

/// The request as Vonage sent it: exactly one of the three.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Request {
    /// The query string of a GET (what follows `?`).
    #[arg(long)]
    query: Option<String>,
    /// A file holding a form body (`application/x-www-form-urlencoded`); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    form: Option<PathBuf>,
    /// A file holding a JSON body; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl Request {
    /// Method, query, headers and body, as the layer would see them.
    fn parts(&self) -> Result<(Method, Option<String>, HeaderMap, Vec<u8>), Error> {
        let mut headers = HeaderMap::new();
        let content_type = |headers: &mut HeaderMap, value| {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        };
        Ok(match (&self.query, &self.form, &self.json) {
            (Some(query), _, _) => {
                let query = query.strip_prefix('?').unwrap_or(query).to_owned();
                (Method::GET, Some(query), headers, Vec::new())
            }
            (_, Some(form), _) => {
                content_type(&mut headers, "application/x-www-form-urlencoded");
                (Method::POST, None, headers, read_input(form)?)
            }
            (_, _, Some(json)) => {
                content_type(&mut headers, "application/json");
                (Method::POST, None, headers, read_input(json)?)
            }
            _ => return Err("give --query, --form or --json".into()),
        })
    }
}

pub fn verify(
    method: SignatureMethod,
    request: &Request,
    now: Option<u64>,
    key: &KeyArgs,
) -> Result<bool, Error> {
    let (http_method, query, headers, body) = request.parts()?;
    let now = now.unwrap_or_else(|| SystemClock.now());
    let verifier = SmsVerifier::new(key.secrets()?, method).clock(FixedClock::new(now));
    let report = verifier.explain(&http_method, query.as_deref(), &headers, &body);
    let params = match (&query, &request.json) {
        (Some(query), _) => SmsParams::from_form(query.as_bytes()).ok(),
        (None, Some(_)) => SmsParams::from_json(&body).ok(),
        (None, None) => SmsParams::from_form(&body).ok(),
    };
    let signed_with = params.and_then(|p| method_that_signed(&p, method, key));
    print_checks(&report, |check| {
        line(check, &report, method, signed_with, verifier.limit())
    });
    Ok(print_verdict(&report, |sms| {
        format!(
            "api_key {}, replay key {}, secret {}",
            sms.api_key(),
            sms.replay_id(),
            sms.secret()
        )
    }))
}

/// Another method whose signature of `params` by the signing secret is their `sig`: a fact
/// that shows the account signs otherwise than `method`.
fn method_that_signed(
    params: &SmsParams,
    method: SignatureMethod,
    key: &KeyArgs,
) -> Option<SignatureMethod> {
    let sig = params.get("sig")?;
    let secret = key.signing_secret().ok()?;
    let unsigned = SmsParams::from_pairs(params.iter().filter(|(n, _)| *n != "sig"));
    SignatureMethod::ALL
        .into_iter()
        .filter(|&other| other != method)
        .find(|other| {
            other
                .sign(&unsigned, secret.as_bytes())
                .eq_ignore_ascii_case(sig)
        })
}

/// What to print for `check` of an SMS report.
fn line(
    check: Check,
    report: &Report<VerifiedSms>,
    method: SignatureMethod,
    signed_with: Option<SignatureMethod>,
    limit: usize,
) -> Line {
    let facts = report.facts();
    let refused = failed(report, check);
    let names = facts.sms_parameter_names.join(", ");
    match check {
        Check::BodySize => Line::new(
            format!("{} bytes, limit {limit}", facts.body_len.unwrap_or(0)),
            format!(
                "{} bytes, over the limit of {limit}",
                facts.body_len.unwrap_or(0)
            ),
            "",
        ),
        Check::Parameters => Line::new(
            format!("{} read: {names}", facts.sms_parameter_names.len()),
            facts.sms_params_error.clone().unwrap_or_default(),
            "send each parameter once, in the query for GET or in the body for POST, never both",
        ),
        Check::SigParameter => Line::new(
            "present".into(),
            "no sig parameter".into(),
            "is signing switched on for this account (Dashboard → Settings)?",
        ),
        Check::ApiKey => {
            let key = facts.api_key.as_deref().unwrap_or_default();
            Line::new(
                format!(
                    "{key:?}, {} secret(s) configured",
                    facts.secrets_tried.unwrap_or(0)
                ),
                format!(
                    "{key:?} has no secret here (configured: {:?})",
                    facts.configured_api_keys
                ),
                "set VONAGE_API_KEY (or --api-key) to the account that sent it",
            )
        }
        Check::Signature => {
            // The method is named as a cause only when the sig was made by another one; the
            // parameters only when it was not.
            let mut hints = Vec::new();
            if let Some(other) = signed_with {
                hints.push(format!(
                    "this sig was made with {other}, not {method}: give --method {other}, or \
                     set the account's signature method (Dashboard → Settings) to {method}"
                ));
            } else {
                if facts.sms_value_has_separator == Some(true) {
                    hints.push(
                        "a value holds & or =, which the signed string writes as _: a signer \
                         that forgot that differs here"
                            .into(),
                    );
                }
                if facts.sms_plus_in_encoding == Some(true) {
                    hints.push(
                        "the request holds +, which decodes to a space: if a literal + was \
                         meant, it must arrive as %2B"
                            .into(),
                    );
                }
                hints.push(
                    "the signed string covers every parameter but sig: one added, dropped or \
                     changed on the way (or another secret) gives another sig"
                        .into(),
                );
            }
            Line::new(
                format!(
                    "{method} by secret {}",
                    facts
                        .secret
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
                format!(
                    "{method} of the {} signed parameters matches none of the {} secret(s)",
                    facts
                        .sms_parameter_names
                        .iter()
                        .filter(|n| *n != "sig")
                        .count(),
                    facts.secrets_tried.unwrap_or(0)
                ),
                &hints.join("\n           "),
            )
        }
        Check::Time => {
            let (skew, max) = (report.clock_skew_secs(), report.max_age_secs());
            let facts = match facts.iat_offset_secs {
                Some(age) => format!("signed {age} s before now (allowed: -{skew} s to {max} s)"),
                None => "no numeric timestamp parameter".into(),
            };
            let hint = match refused {
                Some(Rejection::TokenFromFuture) => "this machine's clock is behind: check NTP",
                Some(Rejection::MissingTimestamp) => "Vonage's signed requests carry timestamp",
                _ => "older than the maximum age: a replay, or give --now to check as of arrival",
            };
            Line::new(facts.clone(), facts, hint)
        }
        _ => Line::default(),
    }
}

/// Signs the parameters of `query` (a `timestamp` of now is added where there is none) and
/// prints them with their `sig`, or a curl command that sends them.
pub fn sign(
    method: SignatureMethod,
    query: &str,
    curl: Option<&str>,
    key: &KeyArgs,
) -> Result<bool, Error> {
    let mut params = SmsParams::from_form(query.strip_prefix('?').unwrap_or(query).as_bytes())?;
    if params.get("timestamp").is_none() {
        params.set("timestamp", SystemClock.now().to_string());
    }
    let unsigned = SmsParams::from_pairs(params.iter().filter(|(n, _)| *n != "sig"));
    let sig = method.sign(&unsigned, key.signing_secret()?.as_bytes());
    let mut signed = unsigned;
    signed.set("sig", sig);
    match curl {
        None => println!("{}", signed.to_form()),
        Some(url) => {
            let url = format!("{url}?{}", signed.to_form());
            println!("curl -sS {}", crate::sign::shell_quote(&url));
        }
    }
    Ok(true)
}
