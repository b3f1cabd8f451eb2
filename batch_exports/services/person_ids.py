"""PostHog's rules for the distinct ids a merge names, and the person id of an event without a person profile.

As PostHog's ingestion (`nodejs/src/worker/ingestion/persons/person-merge-service.ts`, `person-uuid.ts`): an id
is illegal when it is empty after trimming, or one of the generic ids below (some whatever their case, some only
as written), bare or in single or double quotes; a merge that names one does nothing and is logged as a warning.
"""

import uuid

_ANY_CASE = ("anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email", "undefined",
             "true", "false")  # fmt: skip
_AS_WRITTEN = ("[object Object]", "NaN", "None", "none", "null", "0", "undefined")


def _quoted(ids: tuple[str, ...]) -> frozenset[str]:
    return frozenset(form for id_ in ids for form in (id_, f"'{id_}'", f'"{id_}"'))


_ILLEGAL_ANY_CASE = _quoted(_ANY_CASE)
_ILLEGAL_AS_WRITTEN = _quoted(_AS_WRITTEN)

PERSON_NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")
"""PostHog's namespace of deterministic person ids (`PERSON_UUIDV5_NAMESPACE`)."""

MERGES = ("$identify", "$create_alias", "$merge_dangerously")


def is_illegal(distinct_id: str) -> bool:
    """Whether a merge may not name this id (PostHog's `isDistinctIdIllegal`)."""
    return not distinct_id.strip() or distinct_id.lower() in _ILLEGAL_ANY_CASE or distinct_id in _ILLEGAL_AS_WRITTEN


def person_id(team_id: int, distinct_id: str) -> uuid.UUID:
    """PostHog's person id for a distinct id: a UUIDv5 of `"<team id>:<distinct id>"`. A new person gets it, and
    an event with `$process_person_profile: false` whose distinct id has no person carries it."""
    return uuid.uuid5(PERSON_NAMESPACE, f"{team_id}:{distinct_id}")


def merged_id(event: str, properties: dict[str, object]) -> str | None:
    """The distinct id an event merges into its own: `$anon_distinct_id` of an `$identify`, `alias` of a
    `$create_alias` or `$merge_dangerously` (None for any other event)."""
    if event == "$identify" and "$anon_distinct_id" in properties:
        other = properties["$anon_distinct_id"]
    elif event in ("$create_alias", "$merge_dangerously") and properties.get("alias"):
        other = properties["alias"]
    else:
        return None
    return _as_javascript_string(other)


def _as_javascript_string(value: object) -> str:
    """The id as PostHog's `String(value)` reads it (so that `null` or an object is an illegal id, as there)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join("" if item is None else _as_javascript_string(item) for item in value)
    return str(value)
