"""Capture ingestion: PostHog capture payloads become rows of the event source.

`parse` validates a whole payload before anything is written; `store.event_store.write` then stores the
batch in one transaction. Every timestamp lands within the years 1 to 9999 (a client's clock, offset or
`sent_at` that would move it beyond is a CaptureError, not an overflow). A `distinct_id` and a `$session_id` are
at most ID_CHARACTERS long (PostHog's capture keeps 200 characters of a distinct id; here a longer one is
refused rather than cut, so two ids never become one): both are keys of the event source's indexes.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_exports.services import person_ids
from batch_exports.store.event_store import CapturedEvent

ID_CHARACTERS = 200
"""The longest `distinct_id` or `$session_id` an event may carry."""


class CaptureError(ValueError):
    """A payload that cannot be ingested; its message names the offending part (`attr`, when it is one field)."""

    def __init__(self, message: str, attr: str | None = None) -> None:
        super().__init__(message)
        self.attr = attr


def _bounded_id(value: str, where: str, field: str) -> str:
    if len(value) > ID_CHARACTERS:
        raise CaptureError(f"{where}.{field} may be at most {ID_CHARACTERS} characters long; got {len(value)}", field)
    return value


@dataclass
class Payload:
    token: str | None
    events: list[CapturedEvent]
    warnings: list[str]
    """What PostHog reports as ingestion warnings (a merge naming an illegal id): the gateway logs them."""


def _datetime(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise CaptureError(f"{where} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CaptureError(f"{where} is not an ISO 8601 date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _event(raw: Any, index: int, sent_at: datetime | None, now: datetime, warnings: list[str]) -> CapturedEvent:
    where = f"batch[{index}]"
    if not isinstance(raw, dict):
        raise CaptureError(f"{where} must be an object")
    name = raw.get("event")
    if not isinstance(name, str) or not name:
        raise CaptureError(f"{where}.event must be a non-empty string")
    properties = raw.get("properties") or {}
    if not isinstance(properties, dict):
        raise CaptureError(f"{where}.properties must be an object")
    distinct_id = raw.get("distinct_id", properties.get("distinct_id", properties.get("$distinct_id")))
    if isinstance(distinct_id, int | float) and not isinstance(distinct_id, bool):
        distinct_id = str(distinct_id)
    if not isinstance(distinct_id, str) or not distinct_id.strip():
        raise CaptureError(f"{where}.distinct_id must be a non-empty string", "distinct_id")
    distinct_id = _bounded_id(distinct_id.strip(), where, "distinct_id")
    if (session_id := properties.get("$session_id")) is not None:
        if isinstance(session_id, bool) or not isinstance(session_id, str | int | float):
            raise CaptureError(f"{where}.properties.$session_id must be a string", "$session_id")
        _bounded_id(str(session_id), f"{where}.properties", "$session_id")
    try:
        event_uuid = uuid.UUID(str(raw["uuid"])) if raw.get("uuid") else uuid.uuid4()
    except ValueError:
        raise CaptureError(f"{where}.uuid is not a UUID") from None
    timestamp = now
    try:
        if raw.get("timestamp") is not None:
            timestamp = _datetime(raw["timestamp"], f"{where}.timestamp")
            if sent_at is not None:  # the client's clock may be off: keep the event's age as it measured it
                timestamp = now - (sent_at - timestamp)
        elif isinstance(raw.get("offset"), int | float) and not isinstance(raw["offset"], bool):
            timestamp = now - timedelta(milliseconds=raw["offset"])
        timestamp = timestamp.astimezone(UTC)
    except (OverflowError, ValueError, OSError):
        raise CaptureError(f"{where}: its timestamp (with offset or sent_at) is out of range") from None
    set_ = raw.get("$set", properties.get("$set")) or {}
    set_once = raw.get("$set_once", properties.get("$set_once")) or {}
    if not isinstance(set_, dict) or not isinstance(set_once, dict):
        raise CaptureError(f"{where}: $set and $set_once must be objects")
    captured = CapturedEvent(event_uuid, name, distinct_id, properties, timestamp, set_, set_once)
    if properties.get("$process_person_profile") is False:
        captured.person_profile = False
        return captured
    unset = properties.get("$unset")
    if isinstance(unset, list | dict):
        captured.unset = tuple(str(key) for key in unset)
    if (other := person_ids.merged_id(name, properties)) is not None and other != distinct_id:
        illegal = next((id_ for id_ in (distinct_id, other) if person_ids.is_illegal(id_)), None)
        if illegal is not None:
            warnings.append(f"cannot_merge_with_illegal_distinct_id: {name} {event_uuid} names {illegal!r}")
        else:
            captured.merge, captured.dangerous = other, name == "$merge_dangerously"
    return captured


def parse(body: Any, now: datetime | None = None) -> Payload:
    """A capture body: one event, `{"api_key", "batch": [...]}`, or a bare list of events."""
    now = now or datetime.now(UTC)
    if isinstance(body, list):
        body = {"batch": body}
    if not isinstance(body, dict):
        raise CaptureError("the body must be a JSON object or a list of events")
    raw_events = body.get("batch", [body])
    if not isinstance(raw_events, list):
        raise CaptureError("batch must be a list of events")
    sent_at = _datetime(body["sent_at"], "sent_at") if body.get("sent_at") else None
    warnings: list[str] = []
    events = [_event(raw, i, sent_at, now, warnings) for i, raw in enumerate(raw_events)]
    token = body.get("api_key") or body.get("token")
    if token is None and raw_events and isinstance(raw_events[0], dict):
        first = raw_events[0]
        token = first.get("api_key") or first.get("token") or (first.get("properties") or {}).get("token")
    if token is not None and not isinstance(token, str):
        raise CaptureError("api_key must be a string")
    return Payload(token=token, events=events, warnings=warnings)
