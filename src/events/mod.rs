//! Typed Vonage Video callback events (feature `events`).
//!
//! [`VideoEvent::parse`] turns a verified callback body into one enum over every family of
//! Video callbacks, so that one handler can `match`. Parsing is lenient on purpose: Vonage adds
//! fields and event types, and a callback must not be lost to a strict parser. Every known field
//! is optional, unknown fields are kept in `extra` (and written back by `Serialize`), and an
//! event of an unknown type becomes [`VideoEvent::Other`] with the whole JSON. A known field
//! with an odd type reads as absent (`None`) and the rest of the event stays typed: numbers
//! are read from integers, whole floats or their text (`1437676551000`, `"1437676551000"`),
//! text fields take numbers as their text, and any other mismatch is `None`. Only a body that
//! is not a JSON object fails.
//!
//! Sources, per family:
//! - session monitoring and SIP call events: <https://developer.vonage.com/en/video/guides/session-monitoring>
//! - archive status: <https://developer.vonage.com/en/video/guides/archiving/overview>
//! - broadcast status: <https://developer.vonage.com/en/video/guides/broadcast>
//! - Experience Composer: <https://developer.vonage.com/en/video/guides/experience-composer>
//! - live captions: <https://developer.vonage.com/en/video/guides/live-caption>
//! - how failures show in each: <https://developer.vonage.com/en/video/guides/service-disruption-callbacks>
//!
//! ```
//! use vonage_secure_callbacks::events::VideoEvent;
//! let body = br#"{"sessionId":"2_MX4","projectId":"123456","event":"connectionCreated",
//!   "timestamp":1470257688309,"connection":{"id":"c053fcc8","createdAt":1470257688143,"data":""}}"#;
//! match VideoEvent::parse(body).unwrap() {
//!     VideoEvent::Session(e) => assert_eq!(e.connection.unwrap().id.as_deref(), Some("c053fcc8")),
//!     other => panic!("{other:?}"),
//! }
//! ```

mod lenient;
mod media;
mod session;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use media::{
    ArchivePassword, ArchiveStatus, ArchiveStream, BroadcastStatus, CaptionsStatus, RenderStatus,
};
pub use session::{CallState, Connection, SessionEvent, SessionEventKind, SipCall, Stream};

/// Extra fields this crate does not name, kept as they came.
pub type Extra = Map<String, Value>;

/// A project id: a string in session events, a number in archive callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// As text.
    Text(String),
    /// As a number.
    Number(u64),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Text(s) => f.write_str(s),
            Id::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Fields only an archive callback has: one of them and no `event` makes an archive.
const ARCHIVE_ONLY: &[&str] = &[
    "partnerId",
    "outputMode",
    "streamMode",
    "streams",
    "hasAudio",
    "hasVideo",
    "size",
    "duration",
    "password",
];

/// One Vonage Video callback, by family.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum VideoEvent {
    /// Session monitoring: a session, connection or stream was created or destroyed.
    Session(SessionEvent),
    /// SIP interconnect: a SIP call was created, updated, ended or force-muted (sent to the
    /// session monitoring URL, in the same envelope; the call is in [`SessionEvent::call`]).
    SipCall(SessionEvent),
    /// Archive (recording) status changed.
    Archive(ArchiveStatus),
    /// Broadcast (live streaming) status changed.
    Broadcast(BroadcastStatus),
    /// Experience Composer (render) status changed.
    Render(RenderStatus),
    /// Live captions status changed.
    Captions(CaptionsStatus),
    /// Anything else, whole: an event type this crate does not know yet, or one whose fields
    /// did not have the documented types.
    Other(Value),
}

/// The body was not a JSON object: answer 400 (Vonage sends JSON objects only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson;

impl fmt::Display for NotJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("callback body is not a JSON object")
    }
}

impl std::error::Error for NotJson {}

impl VideoEvent {
    /// Parses a callback body. Fails only when it is not a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, NotJson> {
        let value: Value = serde_json::from_slice(body).map_err(|_| NotJson)?;
        if !value.is_object() {
            return Err(NotJson);
        }
        Ok(Self::from_value(value))
    }

    /// Sorts an already parsed JSON object into its family.
    pub fn from_value(value: Value) -> Self {
        fn typed<T: serde::de::DeserializeOwned>(
            value: Value,
            wrap: fn(T) -> VideoEvent,
        ) -> VideoEvent {
            match T::deserialize(&value) {
                Ok(event) => wrap(event),
                Err(_) => VideoEvent::Other(value),
            }
        }
        let event = value.get("event").and_then(Value::as_str).unwrap_or("");
        let has = |field: &str| value.get(field).is_some();
        let has_any = |fields: &[&str]| fields.iter().any(|f| has(f));
        match event {
            "sessionCreated"
            | "sessionDestroyed"
            | "sessionNotification"
            | "connectionCreated"
            | "connectionDestroyed"
            | "streamCreated"
            | "streamDestroyed" => typed(value, VideoEvent::Session),
            "callCreated" | "callUpdated" | "callDestroyed" | "muteForced" => {
                typed(value, VideoEvent::SipCall)
            }
            "archive" => typed(value, VideoEvent::Archive),
            "broadcast" => typed(value, VideoEvent::Broadcast),
            "captions" => typed(value, VideoEvent::Captions),
            "render" | "experienceComposer" => typed(value, VideoEvent::Render),
            // Families whose callbacks carry no `event` name are known by their fields, in
            // this order: captions, broadcasts, archives (fields no render has), renders.
            "" if has("captionId") => typed(value, VideoEvent::Captions),
            "" if has("broadcastUrls") => typed(value, VideoEvent::Broadcast),
            "" if has_any(ARCHIVE_ONLY) => typed(value, VideoEvent::Archive),
            "" if has("id") && has("status") && has_any(&["streamId", "sessionId"]) => {
                typed(value, VideoEvent::Render)
            }
            _ => VideoEvent::Other(value),
        }
    }

    /// The family: `session`, `sip`, `archive`, `broadcast`, `render`, `captions` or `other`.
    pub fn family(&self) -> &'static str {
        match self {
            VideoEvent::Session(_) => "session",
            VideoEvent::SipCall(_) => "sip",
            VideoEvent::Archive(_) => "archive",
            VideoEvent::Broadcast(_) => "broadcast",
            VideoEvent::Render(_) => "render",
            VideoEvent::Captions(_) => "captions",
            VideoEvent::Other(_) => "other",
        }
    }

    /// What happened: the event name for session and SIP events, the status for the others
    /// (`"unknown"` when absent).
    pub fn kind(&self) -> &str {
        let kind = match self {
            VideoEvent::Session(e) => Some(e.event.as_str()),
            VideoEvent::SipCall(e) => Some(e.event.as_str()),
            VideoEvent::Archive(e) => e.status.as_deref(),
            VideoEvent::Broadcast(e) => e.status.as_deref(),
            VideoEvent::Render(e) => e.status.as_deref(),
            VideoEvent::Captions(e) => e.status.as_deref(),
            VideoEvent::Other(v) => v.get("event").and_then(Value::as_str),
        };
        kind.unwrap_or("unknown")
    }

    /// The session the event belongs to, when it names one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            VideoEvent::Session(e) => e.session_id.as_deref(),
            VideoEvent::SipCall(e) => e.session_id.as_deref(),
            VideoEvent::Archive(e) => e.session_id.as_deref(),
            VideoEvent::Broadcast(e) => e.session_id.as_deref(),
            VideoEvent::Render(e) => e.session_id.as_deref(),
            VideoEvent::Captions(e) => e.session_id.as_deref(),
            VideoEvent::Other(v) => v.get("sessionId").and_then(Value::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_json_fails_and_anything_json_object_parses() {
        assert_eq!(VideoEvent::parse(b"not json"), Err(NotJson));
        assert_eq!(VideoEvent::parse(b"[1]"), Err(NotJson));
        let e = VideoEvent::parse(br#"{"event":"somethingNew","x":1}"#).unwrap();
        assert_eq!((e.family(), e.kind()), ("other", "somethingNew"));
    }

    #[test]
    fn an_odd_field_reads_as_absent_and_the_event_stays_typed() {
        let body = br#"{"event":"connectionCreated","timestamp":"yesterday","sessionId":"s"}"#;
        let VideoEvent::Session(e) = VideoEvent::parse(body).unwrap() else {
            panic!("still a session event")
        };
        assert_eq!(e.timestamp, None);
        assert_eq!(e.session_id.as_deref(), Some("s"));
        let body = br#"{"event":"archive","duration":328.0,"size":"18023312","status":7}"#;
        let VideoEvent::Archive(a) = VideoEvent::parse(body).unwrap() else {
            panic!("still an archive")
        };
        assert_eq!((a.duration, a.size), (Some(328), Some(18_023_312)));
        assert_eq!(a.status.as_deref(), Some("7"));
    }

    #[test]
    fn families_without_an_event_name_are_known_by_their_fields() {
        let family = |body: &str| VideoEvent::parse(body.as_bytes()).unwrap().family();
        assert_eq!(
            family(r#"{"id":"r","sessionId":"s","streamId":"t","status":"started"}"#),
            "render"
        );
        assert_eq!(
            family(r#"{"id":"r","sessionId":"s","status":"failed","reason":"x"}"#),
            "render"
        );
        assert_eq!(
            family(r#"{"id":"a","sessionId":"s","status":"stopped","duration":3}"#),
            "archive"
        );
        assert_eq!(
            family(r#"{"id":"a","status":"uploaded","partnerId":1}"#),
            "archive"
        );
        assert_eq!(
            family(r#"{"captionId":"c","status":"started"}"#),
            "captions"
        );
        assert_eq!(family(r#"{"id":"b","broadcastUrls":{}}"#), "broadcast");
        assert_eq!(family(r#"{"status":"started"}"#), "other");
    }

    #[test]
    fn ids_keep_their_form() {
        let text: Id = serde_json::from_str(r#""123456""#).unwrap();
        let number: Id = serde_json::from_str("123456").unwrap();
        assert_eq!(serde_json::to_string(&text).unwrap(), r#""123456""#);
        assert_eq!(serde_json::to_string(&number).unwrap(), "123456");
        assert_eq!(text.to_string(), number.to_string());
    }
}
