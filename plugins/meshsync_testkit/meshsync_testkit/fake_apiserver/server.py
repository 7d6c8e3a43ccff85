"""The HTTP side: an aiohttp app that speaks the kube-apiserver REST protocol, and FakeApiServer.

Routing follows the real URL layout (``/api/v1/namespaces/<ns>/<plural>/<name>``,
``/apis/<group>/<version>/...``). Object semantics (identity, resourceVersions, conflicts,
history) live in :mod:`.store` and are shared by HTTP and the programmatic API
(``server.create`` ...). HTTP requests additionally get what kube's admission and controllers
add around a write: namespace existence/termination checks, the two-step namespace deletion,
garbage collection by ownerReferences, and managedFields. Watches are served by :mod:`.watch`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import pathlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson
import yaml
from aiohttp import web

from ..seed import base_namespaces
from . import managed, subresources, tables
from .encoding import list_body, render
from .errors import ApiError, bad_request, conflict, not_found, watch_list_forbidden
from .faults import Faults
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from .pod_streams import ExecHandler, PodStreams
from .resources import Registry, ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import (
    NAME,
    NAMESPACE,
    RAW,
    RV,
    Entry,
    Store,
    Watcher,
    continue_expired,
    decode,
    decode_continue,
)
from .watch import WatchOptions, WatchStream, make_notifier, truthy

log = logging.getLogger(__name__)

VERSION_INFO = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-08-27T00:00:00Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_JSON = "application/json"
_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_OPENAPI_V2_PB = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_HEALTH = frozenset({"/healthz", "/livez", "/readyz"})
#: Kinds whose DELETE returns the object (graceful/finalized) rather than a Success Status.
_DELETE_RETURNS_OBJECT = frozenset({("", "pods"), ("", "namespaces")})


def _json(body: Any, status: int = 200) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=data, status=status, content_type=_JSON)


def _error_response(err: ApiError) -> web.Response:
    return _json(err.status(), err.code)


class FakeApiServer:
    """A kube-apiserver stand-in over real HTTP on 127.0.0.1, for tests, demos and benchmarks.

    All mutation, query and fault methods are synchronous and thread-safe; use ``start``/
    ``stop`` inside a running event loop, or :meth:`in_thread` from synchronous code.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        disabled_groups: Iterable[str] = (),
        bookmark_interval: float = 1.0,
        namespace_finalize_delay: float = 0.2,
        tls: bool = False,
        gc_delay: float = 0.05,
        history_limit: int = 250_000,
        request_log_limit: int = 10_000,
        seed: bool = True,
        watch_list: bool = True,
    ) -> None:
        self.token = token
        #: Serve streaming lists (``sendInitialEvents``); False answers them as a kube-apiserver
        #: with the WatchList feature gate off does (422).
        self.watch_list = watch_list
        self.bookmark_interval = bookmark_interval
        #: Seconds a namespace deleted over HTTP stays Terminating before it (and its
        #: contents) disappear. ``server.delete()`` of a namespace is immediate.
        self.namespace_finalize_delay = namespace_finalize_delay
        #: Seconds after an HTTP DELETE before its dependents (by ownerReferences) are deleted,
        #: like kube's garbage collector; ``propagationPolicy=Orphan`` keeps them.
        #: ``server.delete()`` does not cascade (call ``server.store.collect_garbage(uid)``).
        self.gc_delay = gc_delay
        self.registry = Registry(disabled_groups)
        self.store = Store(self.registry, history_limit)
        self.faults = Faults(self)
        #: ``pods/log`` and ``pods/exec`` (see pod_streams.py and the methods below).
        self.pod_streams = PodStreams(self)
        #: (method, path with query) of recent requests, oldest first; bounded.
        self.request_log: list[tuple[str, str]] = []
        self._request_log_limit = request_log_limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        #: True while stop() runs: open watches end cleanly.
        self.stopping = False
        self.port = 0
        #: Serve HTTPS with a throwaway CA; ``ca_pem`` is its certificate once started.
        self.tls = tls
        self.ca_pem: bytes | None = None
        if seed:
            self.store.load(base_namespaces())

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("FakeApiServer is not started")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve until :meth:`stop`."""
        self._loop = asyncio.get_running_loop()
        self.stopping = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock, ssl_context=self._ssl_context())
        await site.start()
        self.port = sock.getsockname()[1]

    def _ssl_context(self) -> ssl.SSLContext | None:
        """With ``tls=True``: a throwaway CA (via ``trustme``) and a cert for 127.0.0.1.

        Needed for kubectl with a token: client-go only sends credentials over TLS.
        """
        if not self.tls:
            return None
        try:
            import trustme
        except ImportError:  # pragma: no cover - a dependency of meshsync-testkit
            raise RuntimeError("FakeApiServer(tls=True) needs the 'trustme' package") from None
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.ca_pem = ca.cert_pem.bytes()
        return ctx

    async def stop(self) -> None:
        """End every watch cleanly, close connections and release the port."""
        self.stopping = True
        for w in self.store.watchers():
            w.control = "close"
            w.notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, token: str | None = None, **kwargs: Any) -> Iterator[FakeApiServer]:
        """Run the server's event loop in a background thread, for synchronous tests."""
        server = cls(token=token, **kwargs)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.start())
            except BaseException as exc:  # reported to the caller's thread below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="fake-apiserver", daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            loop.close()
            raise failure[0]
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()

    def write_kubeconfig(
        self, path: str | pathlib.Path, context: str = "fake", namespace: str | None = None
    ) -> pathlib.Path:
        """Write a kubeconfig that points kubectl/clients at this server (with the token)."""
        path = pathlib.Path(path)
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        ctx: dict[str, Any] = {"cluster": context, "user": context}
        if namespace:
            ctx["namespace"] = namespace
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- programmatic API ------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object (keeps a given uid/creationTimestamp); raises ApiError 409 if taken."""
        return decode(self.store.create(self.registry.for_object(obj), obj, trusted=True))

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object; a stale metadata.resourceVersion raises ApiError 409 Conflict."""
        return decode(self.store.update(self.registry.for_object(obj), obj))

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or replace unconditionally if it exists."""
        rt = self.registry.for_object(obj)
        with self.store.lock:
            meta = obj.get("metadata") or {}
            if self.store.get(rt, meta.get("namespace") or "default", meta.get("name", "")):
                return decode(self.store.update(rt, obj, check_rv=False))
            return decode(self.store.create(rt, obj, trusted=True))

    def delete(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Delete now; returns the last state (with the deletion's resourceVersion)."""
        rt = self.registry.for_object(obj)
        meta = obj.get("metadata") or {}
        last = self.store.delete(rt, meta.get("namespace") or "default", meta.get("name", ""))
        return decode(last)

    def get(self, obj_ref: dict[str, Any]) -> dict[str, Any] | None:
        rt = self.registry.for_object(obj_ref)
        meta = obj_ref.get("metadata") or {}
        entry = self.store.get(rt, meta.get("namespace") or "default", meta.get("name", ""))
        return decode(entry) if entry else None

    def objects(self, plural: str, group: str = "") -> list[dict[str, Any]]:
        """Current state of every object of one resource, in (namespace, name) order."""
        rt = self._type_by_plural(plural, group)
        return [decode(e) for e in self.store.all_entries(rt)]

    def load(self, objs: Iterable[dict[str, Any]]) -> int:
        """Bulk create-or-replace (fast path for 100,000 objects); returns the count."""
        return self.store.load(objs)

    # -- pod logs and exec (pod_streams.py) ------------------------------------------------

    def append_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        line: str,
        *,
        previous: bool = False,
        timestamp: Any = None,
    ) -> None:
        """Append a line (or several, newline-separated) to a container's log; ``follow``
        readers get it at once. ``previous=True`` writes the log of the container's previous
        instance (``?previous=true``); ``timestamp`` (datetime, epoch seconds as float, or
        epoch nanoseconds as int) defaults to now."""
        self.pod_streams.logs.append(
            (namespace, pod, container), line, previous=previous, timestamp=timestamp
        )

    def restart_container(self, namespace: str, pod: str, container: str) -> None:
        """The container restarts: its log becomes the previous one, a new one starts empty,
        and ``follow`` readers of the old one reach the end."""
        self.pod_streams.logs.restart((namespace, pod, container))

    def log_lines(
        self, namespace: str, pod: str, container: str, previous: bool = False
    ) -> list[str] | None:
        """The lines logged so far (None: no previous instance)."""
        return self.pod_streams.logs.lines((namespace, pod, container), previous)

    def clear_logs(self, namespace: str, pod: str) -> None:
        """Forget every log of a pod's containers (e.g. before re-creating it)."""
        self.pod_streams.logs.clear(namespace, pod)

    def set_exec_handler(
        self,
        namespace: str,
        pod: str,
        handler: ExecHandler | None,
        container: str | None = None,
    ) -> None:
        """Run ``handler(session)`` (sync or async, returns the exit code) for exec in this pod
        (or only in ``container``) instead of the built-in interpreter; None removes it."""
        self.pod_streams.set_exec_handler(namespace, pod, handler, container)

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self.store.rv

    def _type_by_plural(self, plural: str, group: str) -> ResourceType:
        for rt in self.registry.types():
            if rt.plural == plural and rt.group == group:
                return rt
        raise not_found("resources", f"{plural}.{group}" if group else plural)

    # -- HTTP entry point ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._log_request(request.method, request.path_qs)
        path = request.path
        if path in _HEALTH:
            return web.Response(text="ok")
        try:
            self._authenticate(request)
            injected = self.faults.take_failure()
            if injected is not None:
                raise injected
            return await self._route(request)
        except ApiError as err:
            return _error_response(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # never leak a traceback to the client
            log.debug(
                "fake apiserver: internal error on %s %s", request.method, path, exc_info=True
            )
            return _error_response(ApiError(500, f"Internal error occurred: {exc}"))

    def _log_request(self, method: str, path_qs: str) -> None:
        log_ = self.request_log
        log_.append((method, path_qs))
        if len(log_) > self._request_log_limit * 2:
            del log_[: len(log_) - self._request_log_limit]

    def _authenticate(self, request: web.Request) -> None:
        if self.token is None:
            return
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    async def _route(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        method = request.method
        if method != "GET" and _is_discovery(segs):
            raise _method_not_allowed()
        if not segs:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version"]})
        head = segs[0]
        if head == "version" and len(segs) == 1:
            return _json(VERSION_INFO)
        if head == "openapi":
            return self._openapi(segs)
        if len(segs) == 1 and head in ("api", "apis") and _wants_aggregated(request):
            body = orjson.dumps(self.registry.aggregated(core=head == "api"))
            return web.Response(body=body, headers={"Content-Type": _AGGREGATED})
        if head == "api":
            if len(segs) == 1:
                return _json(self.registry.api_versions(f"127.0.0.1:{self.port}"))
            group, version, rest = "", segs[1], segs[2:]
        elif head == "apis":
            if len(segs) == 1:
                return _json(self.registry.group_list())
            if len(segs) == 2:
                doc = self.registry.api_group(segs[1])
                if doc is None:
                    raise _no_resource()
                return _json(doc)
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise _no_resource()
        if not rest:
            doc = self.registry.resource_list(group, version)
            if doc is None:
                raise _no_resource()
            return _json(doc)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        elif PodStreams.matches(group, version, rest):
            return await self.pod_streams.serve(request, rest[1], rest[3], rest[4])
        rt, namespace, name, sub = self._resolve(group, version, rest)
        verb = self._verb(method, name, watch_path or truthy(request.query.get("watch")))
        if verb not in rt.verbs or (sub and verb not in ("get", "update", "patch")):
            raise _method_not_allowed()
        if self.faults.is_forbidden(rt.plural, rt.group):
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            raise ApiError(
                403,
                f'{rt.display} is forbidden: User "system:serviceaccount:meshsync:meshsync" '
                f'cannot {verb} resource "{rt.plural}" in API group "{rt.group}" {scope}',
                "Forbidden",
                details={"group": rt.group or None, "kind": rt.plural, "name": name or None},
            )
        handler = getattr(self, f"_do_{verb}")
        return await handler(request, rt, namespace, name, sub)

    def _openapi(self, segs: list[str]) -> web.Response:
        """The minimum kubectl needs: an OpenAPI v3 index with no group-version documents.

        kubectl downloads ``/openapi/v3`` before client-side validation (``apply``/``create``)
        and fails without it; with an empty index it finds no schema for any kind and skips
        validation, and ``apply`` falls back to its compiled-in strategic-merge metadata.
        """
        if segs == ["openapi", "v3"]:
            return _json({"paths": {}})
        if segs == ["openapi", "v2"]:
            # client-go asks for the protobuf form; an empty body is a valid, empty Document.
            return web.Response(body=b"", content_type=_OPENAPI_V2_PB)
        raise _no_resource()

    def _resolve(
        self, group: str, version: str, rest: list[str]
    ) -> tuple[ResourceType, str | None, str, str]:
        """Map the path after /api/v1 or /apis/g/v to (resource, namespace, name, subresource).

        ``namespaces/<ns>/<plural>[/<name>]`` is namespaced when <plural> is a namespaced
        resource; otherwise ``namespaces/<name>/...`` is the Namespace object itself.
        """
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            inner = self.registry.lookup(group, version, rest[2])
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _no_resource()
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            raise _no_resource()
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else ""
        if sub and not subresources.served(rt, sub):
            raise _no_resource()  # log, exec, eviction ... are not served
        if name and rt.namespaced and namespace is None:
            raise _no_resource()
        return rt, namespace, name, sub

    @staticmethod
    def _verb(method: str, name: str, watch: bool) -> str:
        """The Kubernetes verb for an HTTP method on an item or collection path."""
        if method == "GET":
            verb = "watch" if watch else ("get" if name else "list")
        elif name:
            verb = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "")
        else:
            verb = {"POST": "create", "DELETE": "deletecollection"}.get(method, "")
        if not verb:
            raise _method_not_allowed()
        return verb

    # -- verbs -----------------------------------------------------------------------------

    async def _do_get(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        entry = self.store.get(rt, namespace or "", name)
        if entry is None:
            raise not_found(rt.plural, name, rt.group)
        if sub:
            return _json(subresources.view(sub, decode(entry)))
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "PartialObjectMetadata")
            return _json(tables.table([tables.row(entry, include, render(entry, rt))]))
        return _json(render(entry, rt))

    async def _do_list(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        q = request.query
        label_reqs, field_reqs = _selectors(q)
        try:
            limit = max(0, int(q.get("limit") or 0))
        except ValueError:
            raise bad_request(f"invalid limit {q.get('limit')!r}") from None
        token = q.get("continue", "")
        if token and self.faults.take_continue_expiry():
            raise continue_expired(decode_continue(token)[1])
        page = self.store.list(rt, namespace, label_reqs, field_reqs, limit, token)
        if tables.wants_table(request.headers.get("Accept", "")):
            include = q.get("includeObject", "PartialObjectMetadata")
            rows = [tables.row(e, include, render(e, rt)) for e in page.entries]
            return _json(tables.table(rows, page.resource_version, page.continue_token))
        return _json(list_body(rt, page.entries, page.resource_version, page.continue_token,
                                page.remaining))  # fmt: skip

    async def _do_create(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        obj = await _read_body(request)
        _check_kind(obj, rt)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            self._check_namespace_open(meta["namespace"])
        if _is_dry_run(request):
            return _json(obj, 201)
        managed.record(obj, _manager(request), rt.api_version)
        entry = self.store.create(rt, obj)
        return _json(render(entry, rt), 201)

    async def _do_update(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        obj = await _read_body(request)
        if sub != subresources.SCALE:
            _check_kind(obj, rt)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace
        if _is_dry_run(request):
            return _json(obj)
        if not sub:
            managed.record(obj, _manager(request), rt.api_version)
            return _json(render(self.store.update(rt, obj), rt))
        with self.store.lock:
            entry = self.store.get(rt, namespace or "", name)
            if entry is None:
                raise not_found(rt.plural, name, rt.group)
            folded = subresources.fold(sub, decode(entry), obj)
            managed.record(folded, _manager(request), rt.api_version, sub)
            entry = self.store.update(rt, folded)
        return _json(subresources.view(sub, decode(entry)))

    async def _do_patch(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype == APPLY_PATCH:
            raise ApiError(
                415,
                "server-side apply is not supported by the fake apiserver; use client-side "
                "kubectl apply",
                "UnsupportedMediaType",
            )
        patchers: dict[str, Callable[[Any, Any], Any]] = {
            MERGE_PATCH: merge_patch,
            STRATEGIC_PATCH: strategic_merge_patch,
            JSON_PATCH: json_patch,
        }
        patcher = patchers.get(ctype)
        if patcher is None:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media "
                f"types include: {', '.join(patchers)}",
                "UnsupportedMediaType",
            )
        try:
            patch = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"invalid patch body: {exc}") from None
        with self.store.lock:
            entry = self.store.get(rt, namespace or "", name)
            if entry is None:
                raise not_found(rt.plural, name, rt.group)
            current = decode(entry)
            patched = patcher(subresources.view(sub, current), patch)
            if not isinstance(patched, dict):
                raise bad_request("the patch did not produce an object")
            if sub:
                patched = subresources.fold(sub, current, patched)
            meta = patched.get("metadata")
            if not isinstance(meta, dict):
                raise ApiError(422, "metadata: Invalid value: must be an object", "Invalid")
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = namespace
            patch_meta = patch.get("metadata") if isinstance(patch, dict) else None
            wants_rv = isinstance(patch_meta, dict) and patch_meta.get("resourceVersion")
            if not wants_rv:
                meta["resourceVersion"] = str(entry[RV])
            if _is_dry_run(request):
                return _json(subresources.view(sub, patched))
            managed.record(patched, _manager(request), rt.api_version, sub)
            entry = self.store.update(rt, patched)
        if sub:
            return _json(subresources.view(sub, decode(entry)))
        return _json(render(entry, rt))

    async def _do_delete(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        options: dict[str, Any] = {}
        if request.can_read_body:
            body = await request.read()
            if body.strip():
                try:
                    options = orjson.loads(body) or {}
                except orjson.JSONDecodeError:
                    raise bad_request("invalid DeleteOptions body") from None
                if not isinstance(options, dict):
                    raise bad_request("DeleteOptions must be an object")
        with self.store.lock:
            entry = self.store.get(rt, namespace or "", name)
            if entry is None:
                raise not_found(rt.plural, name, rt.group)
            if rt.storage_key == ("", "namespaces") and not _is_dry_run(request):
                return _json(self._terminate_namespace(name))
            pre = options.get("preconditions")
            if isinstance(pre, dict):
                current = decode(entry).get("metadata") or {}
                if pre.get("uid") and pre["uid"] != current.get("uid"):
                    raise conflict(rt.plural, name, rt.group)
                if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(entry[RV]):
                    raise conflict(rt.plural, name, rt.group)
            if _is_dry_run(request):
                return _json(render(entry, rt))
            last = self.store.delete(rt, namespace or "", name)
        uid = (decode(last).get("metadata") or {}).get("uid")
        policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if uid and policy != "Orphan":
            # The garbage collector deletes dependents (ownerReferences) shortly after.
            asyncio.get_running_loop().call_later(self.gc_delay, self.store.collect_garbage, uid)
        if rt.storage_key in _DELETE_RETURNS_OBJECT or rt.plural == "customresourcedefinitions":
            return _json(render(last, rt))
        details = {"name": name, "kind": rt.plural, "uid": uid}
        if rt.group:
            details["group"] = rt.group
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        )

    def _terminate_namespace(self, name: str) -> bytes:
        """Namespaces die in two steps, like kube: Terminating now, gone (contents too) soon."""
        entry = self.store.terminate_namespace(name)
        loop = asyncio.get_running_loop()
        loop.call_later(self.namespace_finalize_delay, self._finalize_namespace, name)
        return entry[RAW]

    def _finalize_namespace(self, name: str) -> None:
        rt = self.registry.lookup("", "v1", "namespaces")
        assert rt is not None
        with self.store.lock:
            entry = self.store.get(rt, "", name)
            if entry is not None and _terminating(entry):
                self.store.delete(rt, "", name)

    def _check_namespace_open(self, namespace: str) -> None:
        """NamespaceLifecycle admission: no new objects in a missing or terminating namespace."""
        rt = self.registry.lookup("", "v1", "namespaces")
        entry = self.store.get(rt, "", namespace) if rt is not None else None
        if entry is None:
            raise not_found("namespaces", namespace)
        if _terminating(entry):
            raise ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                "Forbidden",
            )

    async def _do_deletecollection(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        q = request.query
        label_reqs, field_reqs = _selectors(q)
        with self.store.lock:
            page = self.store.list(rt, namespace, label_reqs, field_reqs)
            deleted = [self.store.delete(rt, e[NAMESPACE], e[NAME]) for e in page.entries]
        if request.query.get("propagationPolicy") != "Orphan":
            loop = asyncio.get_running_loop()
            for entry in deleted:
                uid = (decode(entry).get("metadata") or {}).get("uid")
                if uid:
                    loop.call_later(self.gc_delay, self.store.collect_garbage, uid)
        return _json(list_body(rt, deleted, self.store.rv))

    # -- watch -----------------------------------------------------------------------------

    async def _do_watch(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str = "",
    ) -> web.StreamResponse:
        q = request.query
        label_reqs, field_reqs = _selectors(q)
        if name:  # /watch/namespaces/ns/pods/name (deprecated form) == fieldSelector on name
            field_reqs.append((("metadata", "name"), True, name))
        opts = WatchOptions.parse(q, request.headers.get("Accept", ""))
        if opts.send_initial and not self.watch_list:
            raise watch_list_forbidden()
        wake = asyncio.Event()
        notify = make_notifier(asyncio.get_running_loop(), wake)
        watcher = Watcher(rt, namespace, label_reqs, field_reqs, notify)
        return await WatchStream(self, request, rt, watcher, wake, opts).run()


def _wants_aggregated(request: web.Request) -> bool:
    """Does the client accept aggregated discovery v2 (kubectl and client-go do)?"""
    for media in request.headers.get("Accept", "").split(","):
        params = {
            k.strip(): v.strip() for k, _, v in (p.partition("=") for p in media.split(";")[1:])
        }
        if (params.get("g"), params.get("v"), params.get("as")) == (
            "apidiscovery.k8s.io",
            "v2",
            "APIGroupDiscoveryList",
        ):
            return True
    return False


def _is_discovery(segs: list[str]) -> bool:
    """/, /version, /openapi/..., /api, /api/v1, /apis, /apis/<g>, /apis/<g>/<v>."""
    if not segs or segs[0] in ("version", "openapi"):
        return True
    return (segs[0] == "api" and len(segs) <= 2) or (segs[0] == "apis" and len(segs) <= 3)


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "the server does not allow this method on the requested resource", "MethodNotAllowed"
    )


def _selectors(query: Mapping[str, str]) -> tuple[Any, Any]:
    """The parsed ``labelSelector`` and ``fieldSelector`` of a request (400 if malformed)."""
    return (
        parse_label_selector(query.get("labelSelector")),
        parse_field_selector(query.get("fieldSelector")),
    )


def _no_resource() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound")


def _terminating(entry: Entry) -> bool:
    return bool((decode(entry).get("metadata") or {}).get("deletionTimestamp"))


def _manager(request: web.Request) -> str:
    return managed.manager_name(
        request.query.get("fieldManager"), request.headers.get("User-Agent", "")
    )


def _is_dry_run(request: web.Request) -> bool:
    return "dryRun" in request.query


async def _read_body(request: web.Request) -> dict[str, Any]:
    data = await request.read()
    ctype = request.headers.get("Content-Type", "")
    if "protobuf" in ctype or "cbor" in ctype:
        # kubectl's typed commands (create namespace, scale ...) send protobuf; the fake
        # server speaks JSON/YAML only (kubectl create -f / apply -f use JSON).
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml (got {ctype})",
            "UnsupportedMediaType",
        )
    try:
        obj = yaml.safe_load(data) if "yaml" in ctype else orjson.loads(data)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be an object")
    if not isinstance(obj.get("metadata", {}), dict):
        raise bad_request("metadata must be an object")
    return obj


def _check_kind(obj: dict[str, Any], rt: ResourceType) -> None:
    """Default a missing apiVersion/kind from the URL (as kube-apiserver's decoder does) and
    reject a body that names another kind."""
    obj.setdefault("apiVersion", rt.api_version)
    obj.setdefault("kind", rt.kind)
    if obj["apiVersion"] != rt.api_version or obj["kind"] != rt.kind:
        raise bad_request(
            f"the API version in the data ({obj['apiVersion']}) and kind ({obj['kind']}) do "
            f"not match the expected {rt.api_version} {rt.kind}"
        )
