"""The bounded coalescing buffer that holds changes while NATS is unreachable."""

from __future__ import annotations

from meshsync_nats.pending import PendingBuffer

from meshsync_core import Event, EventType
from tests.nats.helpers import PODS


def ev(
    name: str, event_type: EventType = EventType.MODIFIED, rv: str = "1", uid: str = ""
) -> Event:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "d",
            "uid": uid or f"uid-{name}",
            "resourceVersion": rv,
        },
    }
    return Event(event_type, obj, PODS)


def summary(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.name, e.type.value, e.resource_version) for e in events]


def test_latest_state_replaces_older_and_moves_to_end() -> None:
    buf = PendingBuffer(10)
    buf.extend([ev("a", rv="1"), ev("b", rv="1"), ev("a", rv="2")])
    assert summary(buf.drain()) == [("b", "MODIFIED", "1"), ("a", "MODIFIED", "2")]
    assert buf.coalesced == 1 and buf.dropped == 0 and not buf


def test_added_then_modified_stays_added_and_delete_wins() -> None:
    buf = PendingBuffer(10)
    buf.extend([ev("a", EventType.ADDED, "1"), ev("a", EventType.MODIFIED, "2")])
    buf.extend([ev("b", EventType.ADDED, "1"), ev("b", EventType.DELETED, "2")])
    assert summary(buf.drain()) == [("a", "ADDED", "2"), ("b", "DELETED", "2")]


def test_delete_then_recreate_with_same_name_keeps_order() -> None:
    buf = PendingBuffer(10)
    buf.add(ev("web", EventType.DELETED, "5", uid="old"))
    buf.add(ev("web", EventType.ADDED, "6", uid="new"))
    assert [(e.uid, e.type.value) for e in buf.drain()] == [("old", "DELETED"), ("new", "ADDED")]


def test_full_buffer_drops_oldest_state_never_a_delete() -> None:
    buf = PendingBuffer(2)
    buf.add(ev("gone", EventType.DELETED))
    buf.extend([ev("a"), ev("b"), ev("c")])
    assert buf.dropped == 1
    assert summary(buf.drain()) == [
        ("gone", "DELETED", "1"),
        ("b", "MODIFIED", "1"),
        ("c", "MODIFIED", "1"),
    ]
    # Deletes beyond the capacity are all kept.
    buf.extend([ev(f"d{i}", EventType.DELETED) for i in range(5)])
    assert len(buf) == 5 and buf.dropped == 1


def test_add_older_puts_events_in_front_and_newer_wins() -> None:
    buf = PendingBuffer(10)
    buf.extend([ev("a", rv="3"), ev("c", rv="1")])
    buf.add_older([ev("a", rv="2"), ev("b", rv="1")])
    assert summary(buf.drain()) == [
        ("b", "MODIFIED", "1"),
        ("a", "MODIFIED", "3"),
        ("c", "MODIFIED", "1"),
    ]


def test_keep_all_mode_keeps_history_until_full_then_compacts() -> None:
    buf = PendingBuffer(3, keep_all=True)
    buf.extend([ev("a", rv="1"), ev("a", rv="2"), ev("b", rv="1")])
    assert summary(buf.drain()) == [
        ("a", "MODIFIED", "1"),
        ("a", "MODIFIED", "2"),
        ("b", "MODIFIED", "1"),
    ]
    buf.extend([ev("a", rv="1"), ev("a", rv="2"), ev("b", rv="1"), ev("a", rv="3")])
    assert buf.compactions == 1 and buf.dropped == 0
    assert summary(buf.drain()) == [("b", "MODIFIED", "1"), ("a", "MODIFIED", "3")]


def test_partial_drain_in_order() -> None:
    buf = PendingBuffer(10)
    buf.extend([ev(n) for n in "abcde"])
    assert [e.name for e in buf.drain(2)] == ["a", "b"]
    assert [e.name for e in buf.drain()] == ["c", "d", "e"]


def test_buffered_raw_events_stay_undecoded_and_stop_pinning_their_page() -> None:
    """A buffered event copies its JSON out of the list page it was cut from (so a long outage
    holds ~4 KB per object, not a 2 MB page each), and coalescing never decodes it."""
    import json

    decoded: list[object] = []

    def decode(raw: bytes) -> dict:
        decoded.append(raw)
        return json.loads(raw)

    page = bytearray(b" " * 100_000)
    body = b'{"metadata":{"name":"web","uid":"u1","resourceVersion":"2"}}'
    page[500 : 500 + len(body)] = body

    def lazy(event_type: EventType, rv: str) -> Event:
        return Event(
            event_type,
            None,
            PODS,
            raw=memoryview(page)[500 : 500 + len(body)],
            decode=decode,
            identity=("u1", "web", "", rv),
        )

    buffer = PendingBuffer(10)
    buffer.add(lazy(EventType.ADDED, "1"))
    buffer.add(lazy(EventType.MODIFIED, "2"))
    (event,) = buffer.drain()
    assert event.type is EventType.ADDED and event.resource_version == "2"
    assert event.raw_json.__class__ is bytes and event.raw_json == body
    assert decoded == []


def test_jetstream_resend_skips_changes_superseded_by_a_stored_later_one() -> None:
    """Acks come one by one: if web@2 failed but web@3 was stored, resending web@2 would land
    after web@3 and leave the consumer on a stale state. Other failures are resent in order."""
    from meshsync_nats.pending import to_resend

    results = [
        (ev("web", rv="2"), False),  # superseded by web@3 below
        (ev("db", rv="5"), False),  # nothing newer of db: resend
        (ev("web", rv="3"), True),
        (ev("cache", rv="7"), True),
        (ev("cache", rv="8", event_type=EventType.DELETED), False),  # newest of cache: resend
    ]
    assert summary(to_resend(results)) == [("db", "MODIFIED", "5"), ("cache", "DELETED", "8")]
    assert to_resend([]) == []
