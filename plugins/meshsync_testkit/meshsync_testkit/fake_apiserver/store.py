"""The object store: etcd plus the parts of the registry that give objects their metadata.

Every object is kept only as its serialized JSON bytes (``entry[RAW]``) plus the few fields lists
and watches filter on, so 100,000 objects cost little memory and a list page is a ``b",".join``.
All mutations go through one ``threading.RLock`` and advance one global resourceVersion, like
etcd's revision; each mutation is appended to a bounded history that watches replay from, and
offered to the live watchers in the same critical section, so a watcher never misses or
duplicates an event between "replay history" and "receive live events".
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as _dt
import gc
import itertools
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ApiError, already_exists, bad_request, conflict, expired, not_found
from .resources import CRD_GROUP, Registry, ResourceType
from .selectors import (
    FieldRequirement,
    LabelRequirement,
    fields_match,
    labels_match,
    simple_field_fast_path,
)

Key = tuple[str, str]  # (namespace or "", name)
StorageKey = tuple[str, str]  # (group, plural)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


def now_timestamp() -> str:
    """RFC 3339 in UTC with second precision, as ``metav1.Time`` serializes."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fast_uuid4() -> str:
    """A random (version 4) UUID string, 3x faster than ``str(uuid.uuid4())``."""
    n = (random.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (
        0x8000 << 48
    )
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# Entries and history changes are plain tuples, not classes, on purpose: the garbage collector
# stops tracking a tuple of atomic values, while 100,000 slotted objects (times two, with the
# history) would be scanned by every full collection in the hosting process and make a client
# benchmark that shares the process several times slower.

#: One stored version of an object, immutable (updates make a new one):
#: ``(raw JSON bytes, resourceVersion, namespace or "", name, labels JSON bytes, apiVersion)``.
#: Labels are JSON bytes too: a tuple holding a dict (or nested tuples) is never untracked,
#: or only after several full collections.
Entry = tuple[bytes, int, str, str, bytes, str]
_NO_LABELS = b"{}"
RAW, RV, NAMESPACE, NAME, LABELS, API_VERSION = range(6)
_HEAD_KEYS = ["apiVersion", "kind"]
#: The resourceVersion of a continue token that goes on at the newest state (as kube's -1).
INCONSISTENT = -1

#: One history event: ``(rv, type, storage key, entry, previous entry or None)``; the
#: previous state lets filtered watches turn a MODIFIED into ADDED or DELETED.
Change = tuple[int, str, StorageKey, Entry, "Entry | None"]


def decode(entry: Entry) -> dict[str, Any]:
    """A fresh decoded copy of a stored object (callers may mutate it freely)."""
    return orjson.loads(entry[RAW])


def entry_key(entry: Entry) -> Key:
    return (entry[NAMESPACE], entry[NAME])


class Bucket:
    """All objects of one resource, with a lazily maintained sorted key list for paging."""

    __slots__ = ("_sorted", "entries")

    def __init__(self) -> None:
        self.entries: dict[Key, Entry] = {}
        self._sorted: list[Key] | None = []

    def sorted_keys(self) -> list[Key]:
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        return self._sorted

    def put(self, entry: Entry) -> None:
        key = entry_key(entry)
        if key not in self.entries and self._sorted is not None:
            bisect.insort(self._sorted, key)
        self.entries[key] = entry

    def put_bulk(self, entry: Entry) -> None:
        """Insert without keeping the sort order; it is rebuilt on the next list."""
        self.entries[entry_key(entry)] = entry
        self._sorted = None

    def remove(self, key: Key) -> None:
        del self.entries[key]
        if self._sorted is not None:
            i = bisect.bisect_left(self._sorted, key)
            if i < len(self._sorted) and self._sorted[i] == key:
                del self._sorted[i]


class Watcher:
    """A watch's filter plus its queue of pending ``(type, entry)`` events.

    The store appends to ``queue`` while holding its lock and then calls ``notify`` (which the
    server makes thread-safe); the HTTP handler drains the queue from the event loop.
    """

    def __init__(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_reqs: list[LabelRequirement],
        field_reqs: list[FieldRequirement],
        notify: Callable[[], None],
    ) -> None:
        self.rt = rt
        self.skey = rt.storage_key
        self.namespace = namespace
        self.label_reqs = label_reqs
        self.field_reqs = field_reqs
        self._fast_fields = simple_field_fast_path(field_reqs)
        self.filtered = bool(label_reqs or field_reqs)
        self.queue: deque[tuple[str, Entry]] = deque()
        self.notify = notify
        #: Set by faults / CRD deletion / shutdown: "expire", "drop", "close".
        self.control: str | None = None
        #: Only changes after this resourceVersion are sent (the watch's starting point may
        #: be ahead of the store).
        self.after_rv = 0

    def matches(self, entry: Entry) -> bool:
        if self.namespace is not None and entry[NAMESPACE] != self.namespace:
            return False
        if self.label_reqs and not labels_match(self.label_reqs, orjson.loads(entry[LABELS])):
            return False
        if self.field_reqs:
            if self._fast_fields is not None:
                return self._fast_fields(entry[NAMESPACE], entry[NAME])
            return fields_match(self.field_reqs, decode(entry))
        return True

    def offer(self, change: Change) -> bool:
        """Queue the change if this watch selects it; True if something was queued."""
        rv, kind, _, entry, prev = change
        if rv <= self.after_rv:
            return False
        now = self.matches(entry)
        if kind == MODIFIED and self.filtered and prev is not None:
            before = self.matches(prev)
            if now and not before:
                self.queue.append((ADDED, entry))
            elif before and not now:
                self.queue.append((DELETED, entry))
            elif now:
                self.queue.append((MODIFIED, entry))
            else:
                return False
            return True
        if now:
            self.queue.append((kind, entry))
        return now


@dataclass(slots=True)
class ListPage:
    entries: list[Entry]
    resource_version: int
    continue_token: str
    remaining: int | None


class Store:
    """Objects of every resource, the global resourceVersion, history and live watchers."""

    def __init__(self, registry: Registry, history_limit: int = 250_000) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.rv = 1
        self.history_limit = history_limit
        self._buckets: dict[StorageKey, Bucket] = {}
        self._history: deque[Change] = deque()
        #: Watches from resourceVersion >= oldest_rv can be served from history.
        self.oldest_rv = 0
        #: Faults: how many of the next changes open watches do not hear of (see Faults).
        self.lose_events = 0
        self._watchers: dict[StorageKey, set[Watcher]] = {}
        #: owner uid -> objects that named it in ownerReferences (may be stale; re-checked).
        self._dependents: dict[str, set[tuple[StorageKey, Key]]] = {}

    # -- reads -----------------------------------------------------------------------------

    def bucket(self, skey: StorageKey) -> Bucket:
        b = self._buckets.get(skey)
        if b is None:
            b = self._buckets[skey] = Bucket()
        return b

    def get(self, rt: ResourceType, namespace: str, name: str) -> Entry | None:
        with self.lock:
            return self.bucket(rt.storage_key).entries.get(
                (namespace if rt.namespaced else "", name)
            )

    def all_entries(self, rt: ResourceType) -> list[Entry]:
        with self.lock:
            b = self.bucket(rt.storage_key)
            return [b.entries[k] for k in b.sorted_keys()]

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_reqs: list[LabelRequirement] | None = None,
        field_reqs: list[FieldRequirement] | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListPage:
        """One page of a list, in (namespace, name) order like etcd's key order."""
        label_reqs = label_reqs or []
        field_reqs = field_reqs or []
        fast_fields = simple_field_fast_path(field_reqs)
        with self.lock:
            list_rv = self.rv
            keys = self.bucket(rt.storage_key).sorted_keys()
            entries = self.bucket(rt.storage_key).entries
            if namespace is not None:
                lo = bisect.bisect_left(keys, (namespace, ""))
                hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
            else:
                lo, hi = 0, len(keys)
            if continue_token:
                token_rv, start_after = decode_continue(continue_token)
                if 0 <= token_rv < self.oldest_rv:
                    raise continue_expired(start_after)
                if token_rv != INCONSISTENT:
                    list_rv = token_rv
                lo = max(lo, bisect.bisect_right(keys, start_after))
            out: list[Entry] = []
            i = lo
            if not label_reqs and not field_reqs:
                end = hi if limit <= 0 else min(hi, lo + limit)
                out = [entries[k] for k in keys[lo:end]]
                i = end
            else:
                while i < hi and (limit <= 0 or len(out) < limit):
                    e = entries[keys[i]]
                    i += 1
                    if label_reqs and not labels_match(label_reqs, orjson.loads(e[LABELS])):
                        continue
                    if field_reqs:
                        if fast_fields is not None:
                            if not fast_fields(e[NAMESPACE], e[NAME]):
                                continue
                        elif not fields_match(field_reqs, decode(e)):
                            continue
                    out.append(e)
            token = ""
            remaining: int | None = None
            if i < hi and out:
                token = encode_continue(list_rv, keys[i - 1])
                if not label_reqs and not field_reqs:
                    remaining = hi - i
        return ListPage(out, list_rv, token, remaining)

    # -- writes ----------------------------------------------------------------------------

    def create(self, rt: ResourceType, obj: dict[str, Any], *, trusted: bool = False) -> Entry:
        """Store a new object. ``trusted`` (programmatic use) keeps a given uid/timestamp."""
        obj, meta = _own_copy(obj)
        with self.lock:
            namespace, name = self._identity(rt, meta, generate=True)
            bucket = self.bucket(rt.storage_key)
            if (namespace, name) in bucket.entries:
                raise already_exists(rt.plural, name, rt.group)
            if not trusted or not meta.get("uid"):
                meta["uid"] = fast_uuid4()
            if not trusted or not meta.get("creationTimestamp"):
                meta["creationTimestamp"] = now_timestamp()
            for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(transient, None)
            if "spec" in obj or rt.custom:
                meta["generation"] = 1
            is_crd = rt.group == CRD_GROUP and rt.plural == "customresourcedefinitions"
            if is_crd:
                self.registry.crd_types(obj)  # validate before anything else
            self._defaults(rt, obj, meta)
            if is_crd:
                self.registry.register_crd(obj)
            entry = self._commit(rt, ADDED, obj, meta, None)
        return entry

    def update(self, rt: ResourceType, obj: dict[str, Any], *, check_rv: bool = True) -> Entry:
        """Replace an object; a stale ``metadata.resourceVersion`` is a 409 Conflict."""
        obj, meta = _own_copy(obj)
        with self.lock:
            namespace, name = self._identity(rt, meta, generate=False)
            bucket = self.bucket(rt.storage_key)
            prev = bucket.entries.get((namespace, name))
            if prev is None:
                raise not_found(rt.plural, name, rt.group)
            given_rv = meta.get("resourceVersion")
            if check_rv and given_rv not in (None, "") and str(given_rv) != str(prev[RV]):
                raise conflict(rt.plural, name, rt.group)
            old = decode(prev)
            old_meta = old.get("metadata") or {}
            for kept in ("uid", "creationTimestamp", "deletionTimestamp"):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
                else:
                    meta.pop(kept, None)
            if "generation" in old_meta:
                generation = int(old_meta["generation"])
                if obj.get("spec") != old.get("spec"):
                    generation += 1
                meta["generation"] = generation
            if rt.group == CRD_GROUP and rt.plural == "customresourcedefinitions":
                self.registry.crd_types(obj)  # validate before touching the registry
                self._defaults(rt, obj, meta)
                self.registry.unregister_crd(old)
                self.registry.register_crd(obj)
            else:
                self._defaults(rt, obj, meta)
            return self._commit(rt, MODIFIED, obj, meta, prev)

    def delete(self, rt: ResourceType, namespace: str, name: str) -> Entry:
        """Remove an object now (no graceful deletion, no finalizers).

        Deleting a namespace deletes its contents; deleting a CRD deletes its objects and
        removes its resources from discovery.
        """
        with self.lock:
            key = (namespace if rt.namespaced else "", name)
            bucket = self.bucket(rt.storage_key)
            prev = bucket.entries.get(key)
            if prev is None:
                raise not_found(rt.plural, name, rt.group)
            if rt.group == "" and rt.plural == "namespaces":
                self._delete_namespace_contents(name)
            if rt.group == CRD_GROUP and rt.plural == "customresourcedefinitions":
                self._delete_crd_objects(decode(prev))
            obj = decode(prev)
            meta = obj.setdefault("metadata", {})
            return self._commit(rt, DELETED, obj, meta, prev)

    def terminate_namespace(self, name: str) -> Entry:
        """Mark a namespace Terminating (kube's first step of deleting one); idempotent.

        The HTTP layer finishes the deletion a moment later, as the namespace controller would,
        so clients like ``kubectl delete -f`` can still delete the namespace's objects.
        """
        with self.lock:
            rt = self.registry.lookup("", "v1", "namespaces")
            assert rt is not None
            prev = self.get(rt, "", name)
            if prev is None:
                raise not_found("namespaces", name)
            obj = decode(prev)
            meta = obj.setdefault("metadata", {})
            if meta.get("deletionTimestamp"):
                return prev
            meta["deletionTimestamp"] = now_timestamp()
            meta["deletionGracePeriodSeconds"] = 0
            obj["status"] = {"phase": "Terminating"}
            return self._commit(rt, MODIFIED, obj, meta, prev)

    def load(self, objs: Iterable[dict[str, Any]]) -> int:
        """Bulk create-or-replace, tuned for 100,000 objects; returns how many were stored.

        Still records history and notifies watchers, so a watch from an earlier
        resourceVersion sees the objects as ADDED (or MODIFIED when they replaced one).
        Namespaces, CRDs and objects that already exist take the ordinary create/update path.
        """
        types: dict[tuple[Any, Any], ResourceType] = {}
        now = now_timestamp()
        n = 0
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of new containers would trigger needless full collections
        try:
            it = iter(objs)
            # Batches: the lock is released between them, so a server thread keeps serving.
            while batch := list(itertools.islice(it, 1000)):
                with self.lock:
                    for original in batch:
                        self._load_one(original, types, now)
                n += len(batch)
        finally:
            if gc_was_enabled:
                gc.enable()
        return n

    def _load_one(
        self, original: dict[str, Any], types: dict[tuple[Any, Any], ResourceType], now: str
    ) -> None:
        if not isinstance(original, dict):
            raise bad_request("objects to load must be dicts")
        tkey = (original.get("apiVersion"), original.get("kind"))
        rt = types.get(tkey)
        if rt is None:
            rt = types[tkey] = self.registry.for_object(original)
        obj, meta = _own_copy(original)
        key = self._identity(rt, meta, generate=True)
        if key in self.bucket(rt.storage_key).entries:
            self.update(rt, obj, check_rv=False)
        elif rt.group == CRD_GROUP or rt.plural == "namespaces":
            self.create(rt, obj, trusted=True)  # they have side effects and defaults
        else:
            if not meta.get("uid"):
                meta["uid"] = fast_uuid4()
            if not meta.get("creationTimestamp"):
                meta["creationTimestamp"] = now
            if "generation" not in meta and ("spec" in obj or rt.custom):
                meta["generation"] = 1
            self._commit(rt, ADDED, obj, meta, None, bulk=True)

    def compact(self) -> None:
        """Forget all history: watches/continues from any earlier resourceVersion get 410."""
        with self.lock:
            self._history.clear()
            self.oldest_rv = self.rv

    # -- watches ---------------------------------------------------------------------------

    def add_watcher(self, watcher: Watcher, start_rv: int | None) -> int:
        """Register a watch and queue what it must see first; returns the store rv.

        ``start_rv`` None means "current state first": ADDED for every selected object.
        Otherwise events after ``start_rv`` are replayed from history, or 410 if compacted.
        """
        with self.lock:
            if start_rv is None:
                b = self.bucket(watcher.skey)
                for key in b.sorted_keys():
                    e = b.entries[key]
                    if watcher.matches(e):
                        watcher.queue.append((ADDED, e))
            else:
                if start_rv < self.oldest_rv:
                    raise expired(f"too old resource version: {start_rv} ({self.oldest_rv})")
                watcher.after_rv = start_rv
                replay: list[Change] = []
                for change in reversed(self._history):
                    if change[0] <= start_rv:
                        break
                    if change[2] == watcher.skey:
                        replay.append(change)
                for change in reversed(replay):
                    watcher.offer(change)
            self._watchers.setdefault(watcher.skey, set()).add(watcher)
            return self.rv

    def remove_watcher(self, watcher: Watcher) -> None:
        with self.lock:
            ws = self._watchers.get(watcher.skey)
            if ws is not None:
                ws.discard(watcher)

    def watchers(self) -> list[Watcher]:
        with self.lock:
            return [w for ws in self._watchers.values() for w in ws]

    def drain(self, watcher: Watcher) -> tuple[list[tuple[str, Entry]], int]:
        """Take everything queued for a watcher plus the rv it is now current up to."""
        with self.lock:
            items = list(watcher.queue)
            watcher.queue.clear()
            return items, self.rv

    # -- internals -------------------------------------------------------------------------

    def _identity(self, rt: ResourceType, meta: dict[str, Any], *, generate: bool) -> Key:
        name = meta.get("name")
        if not name and generate and meta.get("generateName"):
            name = meta["generateName"] + "".join(
                secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
            meta["name"] = name
        if not name or not isinstance(name, str):
            raise ApiError(422, f"{rt.kind} is invalid: metadata.name: Required value", "Invalid")
        if rt.namespaced:
            namespace = meta.get("namespace") or "default"
            meta["namespace"] = namespace
        else:
            namespace = ""
            meta.pop("namespace", None)
        return (namespace, name)

    def _defaults(self, rt: ResourceType, obj: dict[str, Any], meta: dict[str, Any]) -> None:
        """The few defaults real controllers/registries add that clients look at."""
        if rt.group == "" and rt.plural == "namespaces":
            labels = dict(meta.get("labels") or {})
            labels["kubernetes.io/metadata.name"] = meta["name"]
            meta["labels"] = labels
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Terminating" if meta.get("deletionTimestamp") else "Active"}
        elif rt.group == CRD_GROUP and rt.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            names = dict(spec.get("names") or {})
            names.setdefault("singular", str(names.get("kind", "")).lower())
            names.setdefault("listKind", f"{names.get('kind', '')}List")
            stored = [
                v.get("name")
                for v in spec.get("versions") or []
                if isinstance(v, dict) and v.get("storage")
            ]
            now = now_timestamp()
            obj["status"] = {
                "acceptedNames": names,
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "lastTransitionTime": now,
                        "reason": reason,
                        "message": message,
                    }
                    for t, reason, message in (
                        ("NamesAccepted", "NoConflicts", "no conflicts found"),
                        (
                            "Established",
                            "InitialNamesAccepted",
                            "the initial names have been accepted",
                        ),
                    )
                ],
                "storedVersions": stored,
            }

    def _commit(
        self,
        rt: ResourceType,
        kind: str,
        obj: dict[str, Any],
        meta: dict[str, Any],
        prev: Entry | None,
        *,
        bulk: bool = False,
    ) -> Entry:
        """Advance the rv, store/remove the entry, record history, wake matching watchers."""
        rv = self.rv + 1
        meta["resourceVersion"] = str(rv)
        obj["metadata"] = meta
        labels = meta.get("labels")
        api_version = str(obj.get("apiVersion", rt.api_version))
        # apiVersion and kind first: a list then serves each item without them (as kube does)
        # by skipping a known prefix of the stored bytes, with no re-encoding
        head = {"apiVersion": api_version, "kind": obj.get("kind", rt.kind)}
        entry: Entry = (
            _exact(orjson.dumps(obj if list(obj)[:2] == _HEAD_KEYS else {**head, **obj})),
            rv,
            meta.get("namespace", "") or "",
            meta["name"],
            _exact(orjson.dumps(labels)) if labels else _NO_LABELS,
            api_version,
        )
        self.rv = rv
        bucket = self.bucket(rt.storage_key)
        if kind == DELETED:
            bucket.remove(entry_key(entry))
        elif bulk:
            bucket.put_bulk(entry)
        else:
            bucket.put(entry)
        change: Change = (rv, kind, rt.storage_key, entry, prev)
        history = self._history
        history.append(change)
        if len(history) > self.history_limit:
            self.oldest_rv = history.popleft()[0]
        if kind != DELETED:
            for ref in meta.get("ownerReferences") or ():
                if isinstance(ref, dict) and ref.get("uid"):
                    deps = self._dependents.setdefault(ref["uid"], set())
                    deps.add((rt.storage_key, entry_key(entry)))
        watchers = self._watchers.get(rt.storage_key)
        if self.lose_events:
            self.lose_events -= 1  # a fault: open watches never hear of this change
            watchers = None
        if watchers:
            for w in watchers:
                if w.offer(change):
                    w.notify()
        return entry

    def collect_garbage(self, owner_uid: str) -> int:
        """Delete what an owner (already deleted) owned, recursively: the garbage collector's
        background cascading deletion. Returns how many objects were deleted."""
        types = {rt.storage_key: rt for rt in self.registry.types()}
        deleted = 0
        with self.lock:
            pending = [owner_uid]
            while pending:
                uid = pending.pop()
                for skey, key in sorted(self._dependents.pop(uid, ())):
                    rt = types.get(skey)
                    bucket = self._buckets.get(skey)
                    entry = bucket.entries.get(key) if bucket else None
                    if rt is None or entry is None:
                        continue
                    meta = decode(entry).get("metadata") or {}
                    refs = meta.get("ownerReferences") or ()
                    if not any(isinstance(r, dict) and r.get("uid") == uid for r in refs):
                        continue  # the reference was removed since
                    self.delete(rt, key[0], key[1])
                    deleted += 1
                    if meta.get("uid"):
                        pending.append(meta["uid"])
        return deleted

    def _delete_namespace_contents(self, namespace: str) -> None:
        for rt in self.registry.types():
            if not rt.namespaced:
                continue
            bucket = self._buckets.get(rt.storage_key)
            if not bucket:
                continue
            for key in [k for k in bucket.entries if k[0] == namespace]:
                if key in bucket.entries:
                    self.delete(rt, namespace, key[1])

    def _delete_crd_objects(self, crd: dict[str, Any]) -> None:
        types = self.registry.crd_types(crd)
        if not types:
            return
        rt = types[0]
        bucket = self._buckets.get(rt.storage_key)
        if bucket:
            for key in list(bucket.sorted_keys()):
                self.delete(rt, key[0], key[1])
        for w in self._watchers.pop(rt.storage_key, set()):
            w.control = "close"
            w.notify()
        self.registry.unregister_crd(crd)


def _exact(data: bytes) -> bytes:
    """``data`` in a buffer of its own size.

    ``orjson.dumps`` returns bytes whose allocation is not shrunk to fit (at least 4 KiB, and
    for a 3 KB Pod about 8 KiB): kept for every stored object, that tripled the server's
    memory (12.5 KB per bulk object). One copy at store time costs far less than that.
    """
    return bytes(memoryview(data))


def _own_copy(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copy the two levels the store writes to, so callers' dicts are never mutated."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON object")
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    meta = dict(meta or {})
    for field in ("name", "namespace", "generateName"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            raise ApiError(422, f"metadata.{field}: Invalid value: must be a string", "Invalid")
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            raise ApiError(
                422, f"metadata.{field}: Invalid value: must map strings to strings", "Invalid"
            )
    copy = dict(obj)
    copy["metadata"] = meta
    return copy, meta


def continue_expired(start_after: Key) -> ApiError:
    """410 for a continue token older than the history, with kube's own message and a token
    that goes on inconsistently from the same key."""
    return expired(
        "The provided continue parameter is too old to display a consistent list result. You "
        "can start a new list without the continue parameter, or use the continue token in "
        "this response to retrieve the remainder of the results. Continuing with the provided "
        "token results in an inconsistent list - objects that were created, modified, or "
        "deleted between the time the first chunk was returned and now may show up in the "
        "list.",
        encode_continue(INCONSISTENT, start_after),
    )


def encode_continue(rv: int, last: Key) -> str:
    payload = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": [last[0], last[1]]})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, Key]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        ns, name = data["start"]
        return int(data["rv"]), (str(ns), str(name))
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None
