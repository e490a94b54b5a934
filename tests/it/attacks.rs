//! The attack suites of `test_util` (`jwt_attacks`, `sms_attacks`) against
//! `examples/callback_server` as a user runs it: every attack, in order, gets the answer it
//! must. The command's tests run the same suites against the proxy.

use crate::common;

use common::example::{address, start};
use vonage_secure_callbacks::sms::SignatureMethod;
use vonage_secure_callbacks::test_util::{
    jwt_attacks, sms_attacks, Attack, CallbackSigner, Expected,
};

const API_KEY: &str = "attack-suite-key";
const SECRET: &str = "the-attack-suite-project-signature-secret";

/// Sends each attack to `origin` in order (blocking: the server is a process of its own);
/// returns how each one that got the wrong answer went wrong. `Attack::send` reads each
/// answer while the body is still being written, so that a body refused by its declared length
/// (answered unread, then the connection closed) is seen answered, not reset.
pub fn run(origin: &str, suite: &[Attack]) -> Vec<String> {
    let mut wrong = Vec::new();
    for attack in suite {
        let (status, body) = attack.send(origin).expect("an answer");
        if let Err(why) = attack.check(status, &body) {
            wrong.push(why);
        }
    }
    wrong
}

fn both_suites() -> Vec<Attack> {
    let mut suite = jwt_attacks(&CallbackSigner::new(API_KEY, SECRET), "/vonage/session");
    suite.extend(sms_attacks(
        API_KEY,
        SECRET,
        SignatureMethod::HmacSha256,
        "/vonage/sms",
    ));
    suite
}

/// The figures every run of the suites must show: enough attacks, both verdicts, and every
/// rejection code a request alone can cause.
fn assert_covers(suite: &[Attack]) {
    use vonage_secure_callbacks::Rejection;
    assert!(suite.len() >= 200, "{} attacks", suite.len());
    let accepted = suite
        .iter()
        .filter(|a| a.expected() == Expected::Accepted)
        .count();
    assert!(accepted >= 10, "{accepted} genuine");
    for rejection in Rejection::ALL {
        // The ones a request alone cannot cause: a store's state, a read that fails, a
        // duplicate still in flight, a full window.
        if matches!(
            rejection,
            Rejection::ReplayStoreUnavailable
                | Rejection::ReplayWindowExceeded
                | Rejection::BodyReadError
                | Rejection::DuplicateInFlight
        ) {
            continue;
        }
        assert!(
            suite
                .iter()
                .any(|a| a.expected() == Expected::Refused(*rejection)),
            "no attack is refused with {rejection}"
        );
    }
}

#[tokio::test]
async fn the_callback_server_example_gives_every_attack_its_answer() {
    let (_server, lines) = start(&[
        ("VONAGE_API_KEY", API_KEY),
        ("VONAGE_SIGNATURE_SECRET", SECRET),
        ("VONAGE_SMS_SIGNATURE_METHOD", "sha256"),
    ]);
    let origin = format!("http://{}", address(&lines));
    let suite = both_suites();
    assert_covers(&suite);
    let wrong = run(&origin, &suite);
    assert!(
        wrong.is_empty(),
        "{} of {} attacks got the wrong answer:\n{}",
        wrong.len(),
        suite.len(),
        wrong.join("\n")
    );
}
