"""One small HTTP client for both API servers, so the differential suite can run the same
assertions against the project's fake and the real kube-apiserver.

It is deliberately independent of the code under test (plain `urllib`), and each endpoint
knows how to make the hard cases happen on its server (`compact` makes history older than now
unavailable: etcd compaction on the real one, the fake's fault switch on the fake).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

JSON = "application/json"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    name: str  # "fake" or "real"
    url: str
    context: ssl.SSLContext | None
    headers: dict[str, str]
    compact: Callable[[], None]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        accept: str = JSON,
        content_type: str = JSON,
        timeout: float = 30,
    ) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        for key, value in {**self.headers, "Accept": accept}.items():
            request.add_header(key, value)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=timeout) as r:
                return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as error:
            headers = {k.lower(): v for k, v in error.headers.items()}
            return Answer(error.code, headers, error.read())

    def get(self, path: str, **kwargs: Any) -> Any:
        answer = self.request("GET", path, **kwargs)
        assert answer.status == 200, (
            f"{self.name}: GET {path}: {answer.status} {answer.body[:300]!r}"
        )
        return answer.json()

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        answer = self.request("POST", path, obj)
        assert answer.status == 201, (
            f"{self.name}: POST {path}: {answer.status} {answer.body[:300]!r}"
        )
        return answer.json()

    @contextmanager
    def watch(self, path: str, timeout: float = 30) -> Iterator[Iterator[dict[str, Any]]]:
        """A watch stream: yields (status, events); a non-200 answer yields no events."""
        request = urllib.request.Request(self.url + path)
        for key, value in {**self.headers, "Accept": JSON}.items():
            request.add_header(key, value)
        try:
            response = urllib.request.urlopen(request, context=self.context, timeout=timeout)
        except urllib.error.HTTPError as error:
            code, body = error.code, error.read()

            def failed() -> Iterator[dict[str, Any]]:
                yield {"type": "HTTP", "status": code, "object": json.loads(body)}

            yield failed()
            return
        try:
            yield (json.loads(line) for line in response if line.strip())
        finally:
            response.close()
