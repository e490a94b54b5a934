//! Session monitoring and SIP call events.
//!
//! Documented at <https://developer.vonage.com/en/video/guides/session-monitoring> (and, for
//! SIP calls, <https://developer.vonage.com/en/video/guides/sip-interconnect>).

use serde::{Deserialize, Serialize};

use super::{lenient, Extra, Id};

/// Which session monitoring event this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEventKind {
    /// The first client connected to the session.
    SessionCreated,
    /// The last client left; the session is over until someone connects again.
    SessionDestroyed,
    /// A client connected.
    ConnectionCreated,
    /// A client disconnected (see `reason`).
    ConnectionDestroyed,
    /// A client started publishing a stream.
    StreamCreated,
    /// A stream stopped (see `reason`).
    StreamDestroyed,
    /// A SIP call was dialled into the session.
    CallCreated,
    /// A SIP call changed state.
    CallUpdated,
    /// A SIP call ended (see `reason`, and `reason_code` / `reason_message`).
    CallDestroyed,
    /// A SIP call was muted by a moderator's force-mute.
    MuteForced,
    /// A notice about the session itself, such as `reason: serverRotation` (the media server
    /// is about to be rotated: clients will reconnect).
    SessionNotification,
}

/// A session monitoring callback: one envelope (`event`, session, project, time, reason) around
/// a connection, a stream or a SIP call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionEvent {
    /// `sessionCreated`, `connectionDestroyed`, `callCreated`, ... (see [`SessionEvent::kind`]).
    pub event: String,
    /// The session.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
    /// The project (API key) in the OpenTok environment.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub project_id: Option<Id>,
    /// The application in the unified environment.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
    /// When it happened, Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<u64>,
    /// Why a connection, stream or call ended: `clientDisconnected`, `forceDisconnected`,
    /// `forceUnpublished`, `mediaStopped`, `networkDisconnected`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// The connection, for connection events.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub connection: Option<Connection>,
    /// The stream, for stream events.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream: Option<Stream>,
    /// The SIP call, for call events.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub call: Option<SipCall>,
    /// The SIP call's state, on `callUpdated`.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<CallState>,
    /// Why a SIP call ended, on `callDestroyed`: Vonage's codes 700 to 706 or a SIP status,
    /// as text (Vonage writes it either way; [`SessionEvent::reason_code_number`] reads it).
    #[serde(
        rename = "reason_code",
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason_code: Option<String>,
    /// The words that go with `reason_code`.
    #[serde(
        rename = "reason_message",
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason_message: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SessionEvent {
    /// The event as an enum; `None` for a name this crate does not know.
    pub fn kind(&self) -> Option<SessionEventKind> {
        Some(match self.event.as_str() {
            "sessionCreated" => SessionEventKind::SessionCreated,
            "sessionDestroyed" => SessionEventKind::SessionDestroyed,
            "connectionCreated" => SessionEventKind::ConnectionCreated,
            "connectionDestroyed" => SessionEventKind::ConnectionDestroyed,
            "streamCreated" => SessionEventKind::StreamCreated,
            "streamDestroyed" => SessionEventKind::StreamDestroyed,
            "callCreated" => SessionEventKind::CallCreated,
            "callUpdated" => SessionEventKind::CallUpdated,
            "callDestroyed" => SessionEventKind::CallDestroyed,
            "muteForced" => SessionEventKind::MuteForced,
            "sessionNotification" => SessionEventKind::SessionNotification,
            _ => return None,
        })
    }

    /// `reason_code` as a number, when it is one.
    pub fn reason_code_number(&self) -> Option<u16> {
        self.reason_code.as_deref()?.trim().parse().ok()
    }
}

/// The state of a SIP call in a `callUpdated` event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallState {
    /// `DIALING`: the INVITE is on its way.
    Dialing,
    /// `RINGING`: the far end is alerting.
    Ringing,
    /// `ON_HOLD`.
    OnHold,
    /// `ACTIVE`: answered, media flowing.
    Active,
    /// `HANGUP`: the call is ending.
    Hangup,
    /// A state this crate does not know yet, as sent.
    Unknown(String),
}

impl CallState {
    /// The state as Vonage writes it.
    pub fn as_str(&self) -> &str {
        match self {
            CallState::Dialing => "DIALING",
            CallState::Ringing => "RINGING",
            CallState::OnHold => "ON_HOLD",
            CallState::Active => "ACTIVE",
            CallState::Hangup => "HANGUP",
            CallState::Unknown(s) => s,
        }
    }
}

impl From<String> for CallState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "DIALING" => CallState::Dialing,
            "RINGING" => CallState::Ringing,
            "ON_HOLD" => CallState::OnHold,
            "ACTIVE" => CallState::Active,
            "HANGUP" => CallState::Hangup,
            _ => CallState::Unknown(s),
        }
    }
}

impl<'de> Deserialize<'de> for CallState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(CallState::from)
    }
}

impl Serialize for CallState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A client's connection to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Connection {
    /// The connection id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// When it connected, Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// The connection data set in the client's token.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A published stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Stream {
    /// The stream id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// The publishing connection.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub connection: Option<Connection>,
    /// When publishing started, Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// The name the publisher gave the stream.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `camera`, `screen` or `custom`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub video_type: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The SIP call of a `callCreated`, `callUpdated`, `callDestroyed` or `muteForced` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SipCall {
    /// The call id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// The call's connection in the session.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub connection_id: Option<String>,
    /// When the call was created, Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// The dialled SIP URI.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub sip_uri: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}
