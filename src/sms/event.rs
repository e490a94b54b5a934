//! Typed SMS requests (features `sms` and `events`): an inbound message or a delivery receipt,
//! read from the verified parameters, whichever encoding (query, form, JSON) carried them.
//!
//! Field names follow Vonage's SMS API webhook reference (inbound messages and delivery
//! receipts). As with Video events, parsing is lenient: every field is optional, an unknown
//! `type` or `status` is kept as its text, and parameters that are neither kind stay
//! [`SmsEvent::Other`]. Only the parameters' names decide the kind, never their values.

use super::params::SmsParams;

/// A signed SMS request, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmsEvent {
    /// A message sent to one of your numbers.
    Inbound(InboundSms),
    /// The delivery status of a message you sent.
    Receipt(DeliveryReceipt),
    /// Neither: the parameters as received.
    Other(SmsParams),
}

/// An inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InboundSms {
    /// `msisdn`: the sender's number.
    pub from: Option<String>,
    /// `to`: your number that received it.
    pub to: Option<String>,
    /// `messageId`.
    pub message_id: Option<String>,
    /// `type`.
    pub kind: Option<MessageType>,
    /// `text` (for `text` and `unicode` messages).
    pub text: Option<String>,
    /// `keyword`: the message's first word, upper-cased by Vonage.
    pub keyword: Option<String>,
    /// `message-timestamp`: when Vonage received it (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub message_timestamp: Option<String>,
    /// The part of a long message this is, when it came in parts (`concat-*`).
    pub concat: Option<ConcatPart>,
    /// `data`: a binary message's content, hex.
    pub data: Option<String>,
    /// `udh`: a binary message's user data header, hex.
    pub udh: Option<String>,
}

/// The `type` of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageType {
    /// `text`: GSM characters.
    Text,
    /// `unicode`.
    Unicode,
    /// `binary`: see `data` and `udh`.
    Binary,
    /// Another type, as sent.
    Other(String),
}

/// One part of a message that came in several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcatPart {
    /// `concat-ref`: the same for every part of one message.
    pub reference: String,
    /// `concat-total`: how many parts.
    pub total: Option<u32>,
    /// `concat-part`: this part's number, from 1.
    pub part: Option<u32>,
}

/// A delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeliveryReceipt {
    /// `msisdn`: the number the message was sent to.
    pub recipient: Option<String>,
    /// `to`: the sender id the message was sent from.
    pub sender: Option<String>,
    /// `network-code`: the recipient's network (MCCMNC).
    pub network_code: Option<String>,
    /// `messageId`.
    pub message_id: Option<String>,
    /// `price`: what the message cost, in EUR, as text (no rounding through a float).
    pub price: Option<String>,
    /// `status`.
    pub status: Option<ReceiptStatus>,
    /// `scts`: when the network reported it (`YYMMDDHHMM`).
    pub scts: Option<String>,
    /// `err-code`: 0 when delivered.
    pub err_code: Option<u32>,
    /// `client-ref`: your reference, from the outbound request.
    pub client_ref: Option<String>,
    /// `message-timestamp`.
    pub message_timestamp: Option<String>,
}

/// The `status` of a delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptStatus {
    /// `delivered`.
    Delivered,
    /// `expired`.
    Expired,
    /// `failed`.
    Failed,
    /// `rejected`.
    Rejected,
    /// `accepted`.
    Accepted,
    /// `buffered`.
    Buffered,
    /// `unknown`.
    Unknown,
    /// Another status, as sent.
    Other(String),
}

impl SmsEvent {
    /// The event the parameters describe: a receipt has a `status` and network fields
    /// (`err-code`, `scts` or `network-code`); an inbound message a `text`, `type` or `data`.
    pub fn from_params(params: &SmsParams) -> Self {
        let text = |name: &str| params.get(name).map(str::to_owned);
        let number = |name: &str| params.get(name).and_then(|v| v.trim().parse().ok());
        let has = |name: &str| params.get(name).is_some();
        if has("status") && (has("err-code") || has("scts") || has("network-code")) {
            return SmsEvent::Receipt(DeliveryReceipt {
                recipient: text("msisdn"),
                sender: text("to"),
                network_code: text("network-code"),
                message_id: text("messageId"),
                price: text("price"),
                status: params.get("status").map(ReceiptStatus::from_name),
                scts: text("scts"),
                err_code: number("err-code"),
                client_ref: text("client-ref"),
                message_timestamp: text("message-timestamp"),
            });
        }
        if has("text") || has("type") || has("data") {
            let concat = params.get("concat-ref").map(|reference| ConcatPart {
                reference: reference.to_owned(),
                total: number("concat-total"),
                part: number("concat-part"),
            });
            return SmsEvent::Inbound(InboundSms {
                from: text("msisdn"),
                to: text("to"),
                message_id: text("messageId"),
                kind: params.get("type").map(MessageType::from_name),
                text: text("text"),
                keyword: text("keyword"),
                message_timestamp: text("message-timestamp"),
                concat,
                data: text("data"),
                udh: text("udh"),
            });
        }
        SmsEvent::Other(params.clone())
    }

    /// `"inbound"`, `"receipt"` or `"other"`.
    pub fn kind(&self) -> &'static str {
        match self {
            SmsEvent::Inbound(_) => "inbound",
            SmsEvent::Receipt(_) => "receipt",
            SmsEvent::Other(_) => "other",
        }
    }
}

impl MessageType {
    fn from_name(name: &str) -> Self {
        match name {
            "text" => MessageType::Text,
            "unicode" => MessageType::Unicode,
            "binary" => MessageType::Binary,
            other => MessageType::Other(other.to_owned()),
        }
    }
}

impl ReceiptStatus {
    fn from_name(name: &str) -> Self {
        match name {
            "delivered" => ReceiptStatus::Delivered,
            "expired" => ReceiptStatus::Expired,
            "failed" => ReceiptStatus::Failed,
            "rejected" => ReceiptStatus::Rejected,
            "accepted" => ReceiptStatus::Accepted,
            "buffered" => ReceiptStatus::Buffered,
            "unknown" => ReceiptStatus::Unknown,
            other => ReceiptStatus::Other(other.to_owned()),
        }
    }
}

impl super::VerifiedSms {
    /// The typed event of this request (feature `events`).
    pub fn event(&self) -> SmsEvent {
        SmsEvent::from_params(self.params())
    }
}
