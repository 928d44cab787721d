"""Loopback ports for test servers: the kernel picks them, so parallel workers never collide."""

from __future__ import annotations

import socket


def loopback_socket() -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on a port the kernel picked, ready to hand to a server.

    Keeping the bound socket (instead of reading a free port and binding it again
    later) leaves no moment in which another process can take the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def free_port() -> int:
    """A port that was free a moment ago. Racy under xdist: prefer ``loopback_socket``.

    For the few places that need a port with nothing listening (a refused connection).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
