"""The REST API of an LXD (or Incus) server over its unix socket, read-only.

The socket is full admin of the host, so every read goes through one adapter,
``ReadOnlyLxd``, whose HTTP session refuses any method but GET before a byte
is sent: nothing the suite does here can change the server (readers.lxd reads
the server through it; the lab's own project client allows its own writes).
"""

from __future__ import annotations

import os
from pathlib import Path

# Where a server's socket is, in the order they are looked for ($LXD_DIR first).
SOCKETS = ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket", "/var/lib/incus/unix.socket")
INCUS_SOCKETS = ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")

class ReadOnlyRefused(RuntimeError):
    """A request other than GET was about to reach the server."""


class LxdUnreachable(RuntimeError):
    """No server answers on the socket."""


def find_socket(environ=os.environ, server: str = "lxd") -> Path | None:
    """The socket of the server on this host: $LXD_DIR's, Debian's, the snap's, Incus's
    (for SERVER incus: $INCUS_DIR's and Incus's first).

    >>> find_socket({"LXD_DIR": "/nonexistent"}) is None or True
    True
    """
    variable, first = ("INCUS_DIR", INCUS_SOCKETS) if server == "incus" else ("LXD_DIR", ())
    candidates = ([os.path.join(environ[variable], "unix.socket")] if environ.get(variable) else []) + \
        list(dict.fromkeys([*first, *SOCKETS, *INCUS_SOCKETS]))
    return next((Path(path) for path in candidates if Path(path).is_socket()), None)


def find_socket_on(host, server: str = "lxd") -> str | None:
    """The server's socket on HOST (any Host: this machine or one over ssh), looked for where
    find_socket looks, Incus's first for SERVER incus."""
    from lxc_compliance.readers.machine import OTHER

    candidates = dict.fromkeys([*(INCUS_SOCKETS if server == "incus" else ()), *SOCKETS, *INCUS_SOCKETS])
    return next((path for path in candidates if host.kind(path) == OTHER), None)


def guarded_session(url: str, allowed):
    """A requests session for URL (pylxd's, over the unix socket) that sends a
    request only when ALLOWED(method, url, kwargs) says so; GET always goes."""
    from pylxd.client import get_session_for_url

    session = get_session_for_url(url)
    request = session.request

    def guarded(method, url, *args, **kwargs):
        if method.upper() != "GET" and not allowed(method.upper(), url, kwargs):
            raise ReadOnlyRefused(f"{method} {url}: refused (the suite only reads a host's LXD, "
                                  "and writes only into a project of its own)")
        return request(method, url, *args, **kwargs)

    session.request = guarded
    return session


class ReadOnlyLxd:
    """pylxd's client over SOCKET, whose session sends nothing but GET.

    >>> ReadOnlyLxd.__dict__.get("post") is None
    True
    """

    def __init__(self, socket: Path, timeout: float = 10.0) -> None:
        import pylxd
        from urllib.parse import quote

        self.socket = socket
        session = guarded_session(f"http+unix://{quote(str(socket), safe='')}", lambda method, url, kwargs: False)
        try:
            self._client = pylxd.Client(endpoint=str(socket), session=session, timeout=timeout)
        except pylxd.exceptions.ClientConnectionFailed as exc:
            raise LxdUnreachable(f"no LXD answers on {socket}: {exc or 'connection refused'}") from None

    def get(self, path: str, **params) -> dict | list:
        """The metadata of GET /1.0/PATH (PATH like 'instances', 'networks/lxdbr0')."""
        node = self._client.api
        for part in filter(None, path.split("/")):
            node = node[part]
        return node.get(params=params).json()["metadata"]

    @property
    def server(self) -> dict:
        """GET /1.0, read when the client connected."""
        return self._client.host_info


def _operations(api: "ReadOnlyLxd") -> list[dict]:
    """Every operation of every project, flat (GET /1.0/operations groups them by status)."""
    grouped = api.get("operations", recursion=1, **{"all-projects": "true"}) or {}
    return [operation for group in grouped.values() for operation in group or []] if isinstance(grouped, dict) else []
