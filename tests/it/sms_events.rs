//! Typed SMS requests from the fixtures (`tests/fixtures/sms/`), each read from a form, a query
//! string and a JSON body: the same event every time.

use vonage_secure_callbacks::sms::{MessageType, ReceiptStatus, SmsEvent, SmsParams};

fn fixture(name: &str) -> SmsParams {
    let path = format!(
        "{}/tests/fixtures/sms/{name}.form",
        env!("CARGO_MANIFEST_DIR")
    );
    SmsParams::from_form(&std::fs::read(path).unwrap()).unwrap()
}

/// The event of `name`, checked to be the same from every encoding.
fn event(name: &str) -> SmsEvent {
    let params = fixture(name);
    let from_form = SmsEvent::from_params(&params);
    let query = SmsParams::from_form(params.to_form().as_bytes()).unwrap();
    let object: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(n, v)| (n.to_owned(), v.into()))
        .collect();
    let json =
        SmsParams::from_json(serde_json::Value::Object(object).to_string().as_bytes()).unwrap();
    assert_eq!(SmsEvent::from_params(&query), from_form, "{name}");
    assert_eq!(SmsEvent::from_params(&json), from_form, "{name}");
    from_form
}

#[test]
fn inbound_messages_of_every_type() {
    let SmsEvent::Inbound(text) = event("inbound_text") else {
        panic!()
    };
    assert_eq!(text.kind, Some(MessageType::Text));
    assert_eq!(text.text.as_deref(), Some("Hello world"));
    assert_eq!(text.from.as_deref(), Some("447700900001"));
    assert_eq!(text.keyword.as_deref(), Some("HELLO"));
    assert_eq!(
        text.message_timestamp.as_deref(),
        Some("2020-01-01 12:00:00")
    );
    assert!(text.concat.is_none());

    let SmsEvent::Inbound(unicode) = event("inbound_unicode") else {
        panic!()
    };
    assert_eq!(unicode.kind, Some(MessageType::Unicode));
    assert_eq!(unicode.text.as_deref(), Some("Grüße 👋"));

    let SmsEvent::Inbound(binary) = event("inbound_binary") else {
        panic!()
    };
    assert_eq!(binary.kind, Some(MessageType::Binary));
    assert_eq!(
        (binary.data.as_deref(), binary.udh.as_deref()),
        (Some("0102030405"), Some("050003CC0201"))
    );
    assert_eq!(binary.text, None);

    let SmsEvent::Inbound(part) = event("inbound_concat_part") else {
        panic!()
    };
    let concat = part.concat.unwrap();
    assert_eq!(
        (concat.reference.as_str(), concat.total, concat.part),
        ("204", Some(2), Some(1))
    );
}

#[test]
fn delivery_receipts() {
    let SmsEvent::Receipt(delivered) = event("receipt_delivered") else {
        panic!()
    };
    assert_eq!(delivered.status, Some(ReceiptStatus::Delivered));
    assert_eq!(delivered.err_code, Some(0));
    assert_eq!(delivered.price.as_deref(), Some("0.03330000"));
    assert_eq!(delivered.network_code.as_deref(), Some("23410"));
    assert_eq!(delivered.scts.as_deref(), Some("2001011200"));
    assert_eq!(delivered.recipient.as_deref(), Some("447700900000"));
    assert_eq!(delivered.sender.as_deref(), Some("AcmeInc"));
    assert_eq!(delivered.client_ref.as_deref(), Some("order-42"));

    let SmsEvent::Receipt(failed) = event("receipt_failed") else {
        panic!()
    };
    assert_eq!(
        (failed.status, failed.err_code),
        (Some(ReceiptStatus::Failed), Some(6))
    );
}

#[test]
fn unknown_values_stay_typed_and_other_parameters_stay_whole() {
    let mut params = fixture("receipt_failed");
    params.set("status", "partially_delivered");
    params.set("err-code", "not a number");
    let SmsEvent::Receipt(r) = SmsEvent::from_params(&params) else {
        panic!()
    };
    assert_eq!(
        r.status,
        Some(ReceiptStatus::Other("partially_delivered".into()))
    );
    assert_eq!(r.err_code, None);
    let mut params = fixture("inbound_text");
    params.set("type", "wap-push");
    let SmsEvent::Inbound(m) = SmsEvent::from_params(&params) else {
        panic!()
    };
    assert_eq!(m.kind, Some(MessageType::Other("wap-push".into())));
    let other = SmsParams::from_pairs([("foo", "bar")]);
    assert_eq!(
        SmsEvent::from_params(&other),
        SmsEvent::Other(other.clone())
    );
    assert_eq!(SmsEvent::from_params(&other).kind(), "other");
}
