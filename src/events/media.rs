//! Status callbacks of the media services: archives, broadcasts, Experience Composer renders
//! and live captions.
//!
//! Documented at <https://developer.vonage.com/en/video/guides/archiving/overview>,
//! <https://developer.vonage.com/en/video/guides/broadcast>,
//! <https://developer.vonage.com/en/video/guides/experience-composer> and
//! <https://developer.vonage.com/en/video/guides/live-caption>.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{lenient, Extra, Id};

/// An archive (recording) status callback (`"event": "archive"`, or none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ArchiveStatus {
    /// The archive id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// `"archive"`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub event: Option<String>,
    /// `started`, `paused`, `resumed`, `stopped`, `uploaded`, `available`, `expired`, `failed`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// The archived session.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
    /// The project (API key).
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub partner_id: Option<Id>,
    /// The application in the unified environment.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
    /// The name given at start.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// When recording started, Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// Length in seconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<u64>,
    /// Size in bytes.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<u64>,
    /// Why it stopped or failed.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// For example `1280x720`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolution: Option<String>,
    /// Where to download it, when `available`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// `composed` or `individual`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_mode: Option<String>,
    /// Whether audio was recorded.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub has_audio: Option<bool>,
    /// Whether video was recorded.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub has_video: Option<bool>,
    /// `auto` (every stream of the session) or `manual` (the streams added to it).
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_mode: Option<String>,
    /// The streams recorded, for an individual or manual archive.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub streams: Option<Vec<ArchiveStream>>,
    /// An encrypted archive's key material, as sent (hidden by `Debug`).
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<ArchivePassword>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One stream of an archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ArchiveStream {
    /// The stream id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_id: Option<String>,
    /// Whether its audio was recorded.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub has_audio: Option<bool>,
    /// Whether its video was recorded.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub has_video: Option<bool>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `password` of an encrypted archive's callback: kept as sent, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArchivePassword(String);

impl ArchivePassword {
    /// The value, to decrypt the archive with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ArchivePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchivePassword(<redacted>)")
    }
}

/// A broadcast (live streaming) status callback (`"event": "broadcast"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BroadcastStatus {
    /// The broadcast id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// `"broadcast"`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub event: Option<String>,
    /// `started`, `stopped`, `failed`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// The broadcast session.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
    /// The project (API key).
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
    /// Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<u64>,
    /// For example `1280x720`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolution: Option<String>,
    /// The HLS URL and the RTMP targets with their own statuses.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub broadcast_urls: Option<Value>,
    /// Why it stopped or failed.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An Experience Composer (render) status callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RenderStatus {
    /// The render id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// `starting`, `started`, `stopped`, `failed`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// `"render"` or `"experienceComposer"`, when sent (status callbacks send none).
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub event: Option<String>,
    /// The session the render publishes into.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
    /// The project (API key).
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
    /// Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<u64>,
    /// The page being rendered.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// For example `1280x720`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolution: Option<String>,
    /// The composed stream, once published (absent from a `failed` callback).
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_id: Option<String>,
    /// `Max Duration Exceeded`, `Stop Requested`, or an error, when stopped or failed.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A live captions status callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CaptionsStatus {
    /// The captions id.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub caption_id: Option<String>,
    /// `"captions"`, when sent.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub event: Option<String>,
    /// `started`, `stopped`, `paused`, `failed`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// The captioned session.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
    /// The application.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
    /// The project (API key) in the OpenTok environment.
    #[serde(
        default,
        deserialize_with = "lenient::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub project_id: Option<Id>,
    /// Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<u64>,
    /// Unix milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<u64>,
    /// Seconds captioned.
    #[serde(
        default,
        deserialize_with = "lenient::number",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<u64>,
    /// For example `en-US`.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub language_code: Option<String>,
    /// The speech provider.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider: Option<String>,
    /// Why it stopped or failed.
    #[serde(
        default,
        deserialize_with = "lenient::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// Fields this crate does not name.
    #[serde(flatten)]
    pub extra: Extra,
}
