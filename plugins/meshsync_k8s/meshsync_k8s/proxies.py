"""Which HTTP proxy, if any, stands between MeshSync and the API server.

Two sources, as in client-go: a cluster's ``proxy-url`` in the kubeconfig, else the
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` environment variables (upper or lower case),
chosen by the API server's scheme. Like Go's ``httpproxy``, the environment never applies to
``localhost`` or loopback addresses, and a proxy given without a scheme means ``http://``.
Only ``http://`` proxies are supported; an https API server is reached through ``CONNECT``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from meshsync_core import ConfigError


def proxy_url(value: Any, what: str) -> str:
    """Check a proxy URL; raise ConfigError naming ``what`` (a kubeconfig cluster, a variable)."""
    url = urlsplit(value) if isinstance(value, str) else None
    if url is None or not url.hostname:
        raise ConfigError(f"{what}: proxy-url must be a URL like http://proxy:3128, not {value!r}")
    if url.scheme != "http":
        raise ConfigError(
            f"{what}: {url.scheme or 'scheme-less'} proxies are not supported; "
            "use an http:// proxy-url (it tunnels https to the API server)"
        )
    try:
        url.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{what}: proxy-url has an invalid port") from None
    return value


def environment_proxy(server: str, environ: Mapping[str, str]) -> str | None:
    """The proxy the environment asks for to reach ``server``, or None."""
    url = urlsplit(server)
    host = (url.hostname or "").lower()
    if not host or host == "localhost" or _is_loopback(host):
        return None
    names = (
        ("HTTPS_PROXY", "https_proxy") if url.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    )
    name = next((n for n in names if environ.get(n)), None)
    if name is None or _no_proxy(host, url.port, _first(environ, "NO_PROXY", "no_proxy")):
        return None
    value = environ[name].strip()
    if "://" not in value:
        value = "http://" + value
    return proxy_url(value, f"environment variable {name}")


def _first(environ: Mapping[str, str], *names: str) -> str:
    return next((environ[n] for n in names if environ.get(n)), "")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _no_proxy(host: str, port: int | None, setting: str) -> bool:
    """Whether ``NO_PROXY`` exempts the host: ``*``, a domain (with its subdomains; a leading
    dot is optional), an IP address or a CIDR block, each optionally with ``:port``."""
    for entry in (e.strip().lower() for e in setting.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):
            entry_host, _, raw_port = entry.partition(":")
            entry_port = int(raw_port) if raw_port.isdigit() else None
        entry_host = entry_host.strip("[]")
        if entry_port is not None and entry_port != port:
            continue
        if "/" in entry_host:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry_host.lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False
