//! The body of a webhook: a CloudEvents 1.0 event in structured JSON mode whose `data` is the
//! alert with its evidence. Built once when a delivery is queued, so every attempt sends (and
//! signs) the same bytes. Pure: no I/O.

use portcullis_core::time::Timestamp;
use portcullis_store::AlertRecord;

use crate::time_text::rfc3339;

/// The event type of an update that opened an alert.
pub const OPENED: &str = "dev.portcullis.alert.opened";
/// The event type of an update that added findings to a live alert.
pub const UPDATED: &str = "dev.portcullis.alert.updated";
/// The `content-type` a body is sent with (CloudEvents structured mode).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

pub fn event_type(opened: bool) -> &'static str {
    if opened {
        OPENED
    } else {
        UPDATED
    }
}

/// The alert as an event's `data`: what the admin API shows for it.
pub fn alert_data(a: &AlertRecord) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "tenant": a.tenant.as_str(),
        "rule": a.rule,
        "subject": a.subject,
        "status": a.status.as_str(),
        "shadow": a.shadow,
        "count": a.count,
        "first_seen": rfc3339(a.first_seen),
        "last_seen": rfc3339(a.last_seen),
        // Written by the detector task as JSON; an unreadable one goes as text.
        "evidence": serde_json::from_str::<serde_json::Value>(&a.evidence)
            .unwrap_or_else(|_| serde_json::Value::String(a.evidence.clone())),
    })
}

/// The event, serialised.
pub fn cloud_event(
    id: &str,
    source: &str,
    event_type: &str,
    at: Timestamp,
    alert: &AlertRecord,
) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": event_type,
        "time": rfc3339(at),
        "datacontenttype": "application/json",
        "subject": alert.subject,
        "data": alert_data(alert),
    })
    .to_string()
}
