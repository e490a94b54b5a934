//! Session monitoring and SIP call events.
//!
//! Documented at <https://developer.vonage.com/en/video/guides/session-monitoring> (and, for
//! SIP calls, <https://developer.vonage.com/en/video/guides/sip-interconnect>).

use serde::{Deserialize, Serialize};

use super::{Extra, Id};

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
    /// A SIP call ended (see `reason`).
    CallDestroyed,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The project (API key) in the OpenTok environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Id>,
    /// The application in the unified environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// When it happened, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Why a connection, stream or call ended: `clientDisconnected`, `forceDisconnected`,
    /// `forceUnpublished`, `mediaStopped`, `networkDisconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The connection, for connection events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// The stream, for stream events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// The SIP call, for call events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<SipCall>,
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
            _ => return None,
        })
    }
}

/// A client's connection to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Connection {
    /// The connection id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it connected, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// The connection data set in the client's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The publishing connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// When publishing started, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// The name the publisher gave the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `camera`, `screen` or `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_type: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The SIP call of a `callCreated`, `callUpdated` or `callDestroyed` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SipCall {
    /// The call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The call's connection in the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// When the call was created, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// The dialled SIP URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_uri: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}
