"""The one HTTP client for every request the server makes to a URL a person typed.

``EgressClient`` is an ``httpx.AsyncClient`` whose connections are opened by a
guarded network backend: the host name is resolved first, every address it
resolves to is checked against the ``EgressPolicy`` (``nodes.sdk.egress``),
and the socket goes to the address that was checked, so a name cannot answer
"public" to the check and "127.0.0.1" to the connect. Redirects are followed
only a few hops, and each hop opens its connection through the same check.
Environment proxies are ignored (a proxy would connect on the client's behalf,
unchecked). Every request has a total time limit and the answer is cut at a
size limit, so a slow or huge answer cannot tie up a worker.

A refused address raises ``EgressRefused`` with a reason a marketer can read.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from nodes.sdk.egress import EgressPolicy, IPAddress

__all__ = ["EgressClient", "EgressPolicy", "EgressRefused"]

DEFAULT_TIMEOUT = 15.0
DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_MAX_REDIRECTS = 3
_TRANSFER_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class EgressRefused(Exception):
    """The address is off limits for outgoing requests (see ``EgressPolicy``)."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address (TLS still names the host)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"the name {host} could not be resolved") from exc
        # Scope ids (fe80::1%eth0) are dropped: the address itself is what is judged.
        found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        return list(dict.fromkeys(found))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        # One refused address refuses the name: a resolver may rotate its answers.
        for address in addresses:
            reason = self.policy.address_refusal(host, address)
            if reason is not None:
                raise EgressRefused(reason)
        last: Exception = httpcore.ConnectError(f"the name {host} has no address")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("Touchflow does not call local sockets.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every guarded client of the process.

    Loading the CA bundle costs tens of milliseconds of CPU; a context is safe
    to share, and every app start-up (each test's, too) would otherwise pay it twice.
    """
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(verify=_tls(), trust_env=False)
        # httpx builds its pool without a way to pass a network backend; this is
        # the same pool with the guarded backend (and nothing from the environment).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls(),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )


class EgressClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that only reaches addresses ``policy`` allows.

    Answers are read at most ``max_bytes`` long (the rest is dropped) and each
    request, redirects included, ends after ``timeout`` seconds in total.
    """

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> None:
        self.policy = policy or EgressPolicy()
        self.max_bytes = max_bytes
        self.total_timeout = timeout
        super().__init__(
            transport=_GuardedTransport(self.policy),
            timeout=timeout,
            follow_redirects=True,
            max_redirects=max_redirects,
            trust_env=False,
        )

    def refusal(self, url: str) -> str | None:
        """Why ``url`` is refused before resolving (the SDK's ``Services.egress``)."""
        return self.policy.refusal(url)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        kwargs.pop("stream", None)
        try:
            async with asyncio.timeout(self.total_timeout):
                response = await super().send(request, stream=True, **kwargs)
                try:
                    body = await self._read_capped(response)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise httpx.TimeoutException(
                f"no complete answer within {self.total_timeout:g} seconds", request=request
            ) from exc
        except httpx.TooManyRedirects as exc:
            raise EgressRefused(f"{request.url.host} redirected too many times.") from exc
        # The body is already decoded (and maybe cut): its transfer headers no longer apply.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in _TRANSFER_HEADERS
        ]
        return httpx.Response(
            status_code=response.status_code,
            headers=headers,
            content=body,
            request=response.request,
            extensions={"truncated": len(body) >= self.max_bytes},
        )

    async def _read_capped(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk[: self.max_bytes - size])
            size += len(chunks[-1])
            if size >= self.max_bytes:
                break
        return b"".join(chunks)
