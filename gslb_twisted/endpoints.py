"""
DNS listening addresses as Twisted endpoint strings.

Twisted has no string endpoint for UDP, and the supervisor binds the DNS
sockets itself (to hand them to every core), so both C{udp:...} and
C{tcp:...} descriptions are parsed here, in Twisted's own syntax:
C{udp:5300:interface=127.0.0.1}, C{tcp:port=5300:interface=\\:\\:1}.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DNSEndpoint:
    transport: str  # "udp" or "tcp"
    port: int
    interface: str
    backlog: int = 128

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ipaddress.ip_address(self.interface).version == 6 else socket.AF_INET

    def describe(self) -> str:
        host = f"[{self.interface}]" if ":" in self.interface else self.interface
        return f"{self.transport}:{host}:{self.port}"


def _split(description: str) -> list[str]:
    """Split on colons not escaped with a backslash, as Twisted does."""
    parts = [""]
    escaped = False
    for ch in description:
        if escaped:
            parts[-1] += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            parts.append("")
        else:
            parts[-1] += ch
    return parts


def parseDNSEndpoint(description: str) -> DNSEndpoint:
    """
    Parse C{udp:PORT[:interface=ADDR]} or C{tcp:PORT[:interface=ADDR][:backlog=N]}
    (also C{udp6}/C{tcp6}, and C{port=PORT}).

    @raise ValueError: with a message saying what is wrong.
    """
    parts = _split(description)
    kind = parts[0].lower()
    if kind not in ("udp", "tcp", "udp6", "tcp6"):
        raise ValueError(f"{description!r}: expected udp: or tcp: (got {parts[0]!r})")
    positional = []
    keywords = {}
    for part in parts[1:]:
        if "=" in part:
            key, _, value = part.partition("=")
            keywords[key] = value
        else:
            positional.append(part)
    if positional:
        keywords.setdefault("port", positional[0])
    if len(positional) > 1:
        raise ValueError(f"{description!r}: unexpected {positional[1]!r}")
    unknown = set(keywords) - {"port", "interface", "backlog"}
    if unknown:
        raise ValueError(f"{description!r}: unknown parameter {sorted(unknown)[0]!r}")
    try:
        port = int(keywords["port"])
    except (KeyError, ValueError):
        raise ValueError(f"{description!r}: expected a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{description!r}: port {port} out of range")
    interface = keywords.get("interface", "::" if kind.endswith("6") else "0.0.0.0")
    try:
        interface = str(ipaddress.ip_address(interface))
    except ValueError:
        raise ValueError(f"{description!r}: interface {interface!r} is not an IP address") from None
    try:
        backlog = int(keywords.get("backlog", "128"))
    except ValueError:
        raise ValueError(f"{description!r}: backlog must be an integer") from None
    return DNSEndpoint(kind.rstrip("6"), port, interface, backlog)


def bindDNSSocket(endpoint: DNSEndpoint, reusePort: bool = False) -> socket.socket:
    """
    Create, bind (and for TCP, listen on) a non-blocking socket for
    C{endpoint}.  The caller adopts it into a reactor or hands its descriptor
    to a child process.
    """
    kind = socket.SOCK_DGRAM if endpoint.transport == "udp" else socket.SOCK_STREAM
    sock = socket.socket(endpoint.family, kind)
    try:
        if endpoint.transport == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reusePort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if endpoint.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((endpoint.interface, endpoint.port))
        if endpoint.transport == "tcp":
            sock.listen(endpoint.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# sun_path holds 108 bytes on Linux (104 on the BSDs), one of them the
# terminating NUL.  A longer path fails deep inside connect(2)/bind(2) with
# an error Twisted reports badly, so it is refused up front, by name.
UNIX_PATH_MAX = 107


def unixPathProblem(description: str) -> str | None:
    """
    Why the unix socket path of endpoint C{description} cannot work, or
    C{None} (also for endpoints that are not C{unix:}).

    >>> unixPathProblem("unix:/tmp/" + "x" * 120)[:25]
    'socket path is 125 bytes,'
    """
    parts = _split(description)
    if parts[0].lower() != "unix" or len(parts) < 2:
        return None
    path = next((part[len("path="):] for part in parts[1:] if part.startswith("path=")), None)
    if path is None:
        path = next((part for part in parts[1:] if "=" not in part), "")
    length = len(path.encode("utf-8", "surrogateescape"))
    if length > UNIX_PATH_MAX:
        return (f"socket path is {length} bytes, longer than the {UNIX_PATH_MAX} a unix socket address "
                "holds; use a shorter (for example relative) path")
    return None
