"""The kubeconfig ``auth-provider: oidc`` stanza, as client-go's oidc provider handles it.

The ``id-token`` is the bearer token while it is valid: a JWT whose ``exp`` claim is more than
10 seconds away (the API server verifies the signature, not us). As in client-go, an id-token
that is not a JWT is an error, and one without ``exp`` counts as expired. An expired token, or
one the API server answers 401 to, is replaced by fetching a new one with the
``refresh-token`` from the issuer's token endpoint (found through
``<idp-issuer-url>/.well-known/openid-configuration``); an expired token that cannot be
refreshed is an error. Unlike client-go, refreshed tokens are kept in memory and not written
back into the kubeconfig file, and ``idp-issuer-url`` and ``client-id`` are only needed for
refreshing.

Refreshing is a blocking HTTP call (urllib): the source runs it in a thread. No message ever
contains a token or the client secret.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from meshsync_core import ConfigError

#: A token this close to its expiry is refreshed before use (client-go's ``expiryDelta``).
EXPIRY_MARGIN = 10.0
HTTP_TIMEOUT = 10.0


@dataclass
class OidcProvider:
    """The tokens and client settings of one ``auth-provider: oidc`` user."""

    what: str
    id_token: str = ""
    refresh_token: str = ""
    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    #: Verifies the issuer's TLS certificate (``idp-certificate-authority(-data)``).
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_config(
        cls, config: Any, what: str, ssl_context: ssl.SSLContext | None
    ) -> OidcProvider:
        if not isinstance(config, dict):
            raise ConfigError(f"{what}: auth-provider oidc needs a config mapping")
        provider = cls(
            what=what,
            id_token=str(config.get("id-token") or ""),
            refresh_token=str(config.get("refresh-token") or ""),
            issuer=str(config.get("idp-issuer-url") or "").rstrip("/"),
            client_id=str(config.get("client-id") or ""),
            client_secret=str(config.get("client-secret") or ""),
            ssl_context=ssl_context,
        )
        if not provider.id_token and not provider.can_refresh:
            raise ConfigError(
                f"{what}: auth-provider oidc needs an id-token, or a refresh-token with "
                "idp-issuer-url and client-id"
            )
        if provider.id_token and not _is_jwt(provider.id_token):
            raise ConfigError(f"{what}: the auth-provider oidc id-token is not a JWT")
        return provider

    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.issuer and self.client_id)

    @property
    def due(self) -> bool:
        """Whether the ID token has expired and can be refreshed (checked before requests)."""
        return self.can_refresh and not _valid(self.id_token)

    def current_token(self) -> str:
        """The ID token, refreshed first when it has expired; ConfigError if it cannot be."""
        if _valid(self.id_token):
            return self.id_token
        if not self.can_refresh:
            raise ConfigError(
                f"{self.what}: the oidc id-token has expired (or has no exp claim) and cannot "
                "be refreshed without refresh-token, idp-issuer-url and client-id; log in again"
            )
        return self.refresh()

    def refresh(self) -> str:
        """Fetch a new ID token with the refresh token; raise ConfigError if that fails."""
        if not self.can_refresh:
            raise ConfigError(f"{self.what}: the oidc id-token cannot be refreshed")
        endpoint = self._token_endpoint()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        answer = self._fetch(endpoint, urllib.parse.urlencode(form).encode())
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise ConfigError(f"{self.what}: the oidc token endpoint returned no id_token")
        self.id_token = id_token
        if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
            self.refresh_token = answer["refresh_token"]  # rotating refresh tokens
        return id_token

    def _token_endpoint(self) -> str:
        discovery = self._fetch(f"{self.issuer}/.well-known/openid-configuration")
        endpoint = discovery.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise ConfigError(f"{self.what}: the oidc issuer {self.issuer} has no token_endpoint")
        return endpoint

    def _fetch(self, url: str, data: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(
                request, timeout=HTTP_TIMEOUT, context=self.ssl_context
            ) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ConfigError(
                f"{self.what}: oidc refresh failed: {url} answered {exc.code} "
                f"{_error_code(exc)}".rstrip()
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(f"{self.what}: oidc refresh failed: {url}: {reason}") from None
        if not isinstance(body, dict):
            raise ConfigError(f"{self.what}: oidc refresh failed: {url} did not answer an object")
        return body


def _error_code(exc: urllib.error.HTTPError) -> str:
    """The OAuth ``error`` code of a failed answer (never its other fields)."""
    try:
        error = json.loads(exc.read()).get("error")
    except (ValueError, AttributeError, OSError):
        return ""
    return f"({error})" if isinstance(error, str) else ""


def _claims(token: str) -> dict[str, Any] | None:
    """The (unverified) claims of a JWT, None if ``token`` is not one: three dot-separated
    parts, the middle one base64url JSON. The API server, not us, checks the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def _is_jwt(token: str) -> bool:
    return _claims(token) is not None


@functools.lru_cache(maxsize=16)
def _exp(token: str) -> float:
    """A JWT's ``exp`` (0 when absent or unreadable); cached, as it is checked per request."""
    claims = _claims(token) if token else None
    try:
        return float(claims["exp"]) if claims is not None else 0.0
    except (KeyError, TypeError, ValueError):
        return 0.0


def _valid(token: str) -> bool:
    """client-go's test: a JWT whose ``exp`` is more than EXPIRY_MARGIN away. No ``exp``, or an
    unreadable one, means expired."""
    return _exp(token) > time.time() + EXPIRY_MARGIN
