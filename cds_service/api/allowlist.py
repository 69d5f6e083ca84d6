"""Which FHIR servers this service may contact: the SSRF guard for `fhirServer`.

A request names the server to query and hands us a token for it, so an unchecked `fhirServer`
would let any caller make this service send requests (and the token) anywhere. A URL is
allowed when it lies under a configured base URL: same scheme, host and port, and the base's
path on a segment boundary. With no allowlist configured, development allows any http(s) URL
and production allows none.
"""

from __future__ import annotations

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _parts(url: str, allow_query: bool) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path without trailing slash), or None for a URL we never contact."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    if (
        parsed.scheme not in _DEFAULT_PORTS
        or not parsed.host
        or parsed.userinfo
        or parsed.fragment
        or (parsed.query and not allow_query)
        or ".." in parsed.path.split("/")  # %2e%2e decodes to .. and a server may resolve it
    ):
        return None
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    return parsed.scheme, parsed.host.lower(), port, parsed.path.rstrip("/")


def within(base: str, url: str) -> bool:
    """`url` (which may carry a query, as a Bundle `next` link does) lies under `base`."""
    b, u = _parts(base, allow_query=False), _parts(url, allow_query=True)
    if b is None or u is None or b[:3] != u[:3]:
        return False
    return u[3] == b[3] or u[3].startswith(b[3] + "/")


def server_allowed(url: str, allowlist: tuple[str, ...], env: str) -> bool:
    if not allowlist:
        return env == "development" and _parts(url, allow_query=False) is not None
    return _parts(url, allow_query=False) is not None and any(within(b, url) for b in allowlist)
