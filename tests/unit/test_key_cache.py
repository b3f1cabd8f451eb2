"""The keys a gateway keeps: a lookup that began before a change stores nothing, entries lapse, and they are
bounded (the oldest make room)."""

import uuid

from api.key_cache import KeptKeys
from batch_exports.store.api_keys import READ, ApiKey


def key() -> ApiKey:
    return ApiKey(id=uuid.uuid4(), scopes=frozenset({READ}), project_ids=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lookup_that_began_before_a_change_does_not_store_its_answer() -> None:
    kept = KeptKeys()
    found = key()
    began = kept.generation
    kept.forget()  # a notification arrives while the lookup runs: its answer may be stale
    kept.put(began, "sha256$a", 1, found)
    assert kept.get("sha256$a", 1) is None and len(kept) == 0
    kept.put(kept.generation, "sha256$a", 1, found)
    assert kept.get("sha256$a", 1) is found
    assert kept.get("sha256$a", 2) is None  # kept per project


def test_a_change_forgets_every_entry() -> None:
    kept = KeptKeys()
    for project_id in range(1, 4):
        kept.put(kept.generation, "sha256$a", project_id, key())
    kept.forget()
    assert len(kept) == 0 and all(kept.get("sha256$a", project_id) is None for project_id in range(1, 4))


def test_an_entry_lapses_after_the_interval_a_use_is_noted() -> None:
    clock = Clock()
    kept = KeptKeys(lapse_seconds=60, clock=clock)
    found = key()
    kept.put(kept.generation, "sha256$a", 1, found)
    clock.now += 59.9
    assert kept.get("sha256$a", 1) is found
    clock.now += 0.1
    assert kept.get("sha256$a", 1) is None and len(kept) == 0


def test_the_oldest_entries_make_room() -> None:
    kept = KeptKeys(max_entries=3)
    keys = [key() for _ in range(5)]
    for project_id, found in enumerate(keys):
        kept.put(kept.generation, "sha256$a", project_id, found)
    assert len(kept) == 3
    assert [kept.get("sha256$a", project_id) for project_id in range(5)] == [None, None, *keys[2:]]
    kept.put(kept.generation, "sha256$a", 2, keys[2])  # renewed: the newest now
    kept.put(kept.generation, "sha256$b", 1, keys[0])
    assert kept.get("sha256$a", 2) is keys[2] and kept.get("sha256$a", 3) is None


def test_at_most_ten_thousand_entries_by_default() -> None:
    kept = KeptKeys()
    for i in range(10_001):
        kept.put(kept.generation, f"sha256${i}", 1, key())
    assert len(kept) == 10_000 and kept.get("sha256$0", 1) is None
