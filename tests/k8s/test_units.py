"""Pure functions: resource names, CRD versions, the MeshSync CR, backoff, tracked memory."""

from __future__ import annotations

import random
import sys

import pytest
from meshsync_k8s.crds import crd_resource
from meshsync_k8s.meshsync_cr import parse_meshsync_cr
from meshsync_k8s.resources import ApiResource, ResourceName, parse_resource_name, resolve
from meshsync_k8s.watcher import Tuning, backoff_delay, next_attempt

from meshsync_core import ConfigError, EventType


@pytest.mark.parametrize(
    ("text", "expected", "excluded"),
    [
        ("pod", ResourceName("pod", None, None, "pod"), False),
        ("Pods.v1.", ResourceName("pods", "v1", "", "Pods.v1."), False),
        (
            "deployments.v1.apps",
            ResourceName("deployments", "v1", "apps", "deployments.v1.apps"),
            False,
        ),
        ("deployments.apps", ResourceName("deployments", None, "apps", "deployments.apps"), False),
        ("pods.v1", ResourceName("pods", "v1", "", "pods.v1"), False),
        ("-secrets", ResourceName("secrets", None, None, "secrets"), True),
        ("!cronjobs.v1.batch", ResourceName("cronjobs", "v1", "batch", "cronjobs.v1.batch"), True),
        ("x.v2beta1.a.b.c", ResourceName("x", "v2beta1", "a.b.c", "x.v2beta1.a.b.c"), False),
    ],
)
def test_parse_resource_name(text, expected, excluded) -> None:
    assert parse_resource_name(text) == (expected, excluded)


@pytest.mark.parametrize("text", ["", "-", "pods..apps", "po/log", "pods.v1.Bad_Group"])
def test_parse_resource_name_rejects(text) -> None:
    with pytest.raises(ConfigError):
        parse_resource_name(text)


def test_resolve_prefers_core_and_preferred_version() -> None:
    catalog = [
        ApiResource("", "v1", "events", "Event", True, "event", ("ev",)),
        ApiResource("events.k8s.io", "v1beta1", "events", "Event", True, "event"),
        ApiResource("events.k8s.io", "v1", "events", "Event", True, "event"),
    ]
    assert resolve(ResourceName("ev"), catalog) is catalog[0]
    found = resolve(ResourceName("event", None, "events.k8s.io"), catalog, {"events.k8s.io": "v1"})
    assert found is catalog[2]
    assert resolve(ResourceName("events", "v1beta1", "events.k8s.io"), catalog) is catalog[1]
    assert resolve(ResourceName("nothing"), catalog) is None


def _crd(versions, scope="Namespaced"):
    return {
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": versions,
        }
    }


def test_crd_uses_storage_version_not_first_listed() -> None:
    res = crd_resource(
        _crd(
            [
                {"name": "v1alpha1", "served": True, "storage": False},
                {"name": "v1", "served": True, "storage": True},
            ]
        )
    )
    assert res is not None and res.version == "v1" and res.namespaced and res.short_names == ("wd",)
    # storage version not served: the first served one
    res = crd_resource(
        _crd(
            [
                {"name": "v1", "served": False, "storage": True},
                {"name": "v2", "served": True, "storage": False},
            ],
            scope="Cluster",
        )
    )
    assert res is not None and res.version == "v2" and not res.namespaced
    assert crd_resource(_crd([{"name": "v1", "served": False, "storage": True}])) is None
    assert crd_resource({"spec": "nonsense"}) is None


def test_meshsync_cr_parsing() -> None:
    def cr(data):
        return {"spec": {"watch-list": {"data": data}}}

    config = parse_meshsync_cr(
        cr({"whitelist": '[{"Resource": "pods.v1.", "Events": ["ADDED", "deleted"]}]'})
    )
    (name, events), *_ = config.whitelist
    assert name.name == "pods" and events == {EventType.ADDED, EventType.DELETED}
    assert parse_meshsync_cr(cr({"blacklist": '["secrets.v1."]'})).blacklist[0].name == "secrets"
    assert parse_meshsync_cr({"spec": {}}).empty
    for data, message in [
        ({"whitelist": '[{"Resource": "pods.v1."}]', "blacklist": '["x"]'}, "both"),
        ({"whitelist": "[not json"}, "not valid JSON"),
        ({"whitelist": '[{"Resource": "pods.v1.", "Events": ["CREATED"]}]'}, "unknown event"),
        ({"blacklist": "[1]"}, "is not a string"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_meshsync_cr(cr(data))


def test_backoff_grows_with_jitter_and_caps() -> None:
    tuning = Tuning(backoff_base=0.5, backoff_max=4.0)
    attempt, delays = 0, []
    for _ in range(8):
        delays.append(backoff_delay(attempt, tuning, random.random()))
        attempt = next_attempt(attempt)
    assert 0.25 <= delays[0] <= 0.5
    assert 1.0 <= delays[2] <= 2.0
    assert all(2.0 <= d <= 4.0 for d in delays[4:])
    assert backoff_delay(0, tuning, random.random()) <= 0.5  # after a success: attempt 0 again


def test_tracked_bytes_per_object_is_small() -> None:
    """The tracking structure (uid -> "rv\\0ns\\0name") stays under 300 bytes per object."""
    state: dict[str, str] = {}
    for i in range(20_000):
        uid = f"0b0e2c1a-6c53-4c2b-9c1e-{i:012d}"
        state[uid] = f"{123456 + i}\0bulk-{i % 10}\0worker-{i:07d}-5f6d7c8b9-abcde"
    total = sys.getsizeof(state) + sum(
        sys.getsizeof(k) + sys.getsizeof(v) for k, v in state.items()
    )
    assert total / len(state) <= 300


async def test_gc_pause_is_nestable_across_tasks() -> None:
    import asyncio
    import gc

    from meshsync_core.gc_pause import gc_paused

    assert gc.isenabled()
    step = asyncio.Event()

    async def first() -> None:
        with gc_paused():
            assert not gc.isenabled()
            await step.wait()  # second() pauses and ends meanwhile
            assert not gc.isenabled()

    async def second() -> None:
        with gc_paused():
            step.set()
        assert not gc.isenabled()  # first() still holds its pause

    await asyncio.gather(first(), second())
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a collector disabled by the application stays disabled
    finally:
        gc.enable()


def test_redaction_decodes_secrets_only() -> None:
    """Non-Secrets pass without being decoded; a lazy Secret is redacted and loses its raw JSON."""
    import json

    from meshsync_k8s.redaction import REDACTED, SecretRedaction

    from meshsync_core import Event, EventType, Resource

    decoded: list[bytes] = []

    def decode(raw: bytes) -> dict:
        decoded.append(raw)
        return json.loads(raw)

    def lazy(resource: Resource, body: dict) -> Event:
        meta = body["metadata"]
        return Event(
            EventType.ADDED,
            None,
            resource,
            raw=json.dumps(body).encode(),
            decode=decode,
            identity=(meta["uid"], meta["name"], "default", "1"),
        )

    redact = SecretRedaction({})
    pod = lazy(Resource("", "v1", "pods", "Pod"), {"metadata": {"name": "p", "uid": "u1"}})
    assert redact(pod) is pod and decoded == []
    secret = lazy(
        Resource("", "v1", "secrets", "Secret"),
        {"kind": "Secret", "metadata": {"name": "s", "uid": "u2"}, "data": {"k": "c2VjcmV0"}},
    )
    out = redact(secret)
    assert out is not None and out.object["data"] == {"k": REDACTED}
    assert out.raw_json is None  # nobody can read the clear value from the raw text
    assert out.uid == "u2"


def test_track_is_the_one_diff_of_lists_and_watches() -> None:
    from meshsync_k8s.watcher import track

    from meshsync_core import EventType

    state: dict[str, str] = {}
    assert track(state, ("u1", "web", "shop", "5")) is EventType.ADDED
    assert track(state, ("u1", "web", "shop", "5")) is None  # unchanged: nothing to say
    assert track(state, ("u1", "web", "shop", "5"), full=True) is EventType.ADDED  # a resync
    assert track(state, ("u1", "web", "shop", "6")) is EventType.MODIFIED
    assert state == {"u1": "6\0shop\0web"}
