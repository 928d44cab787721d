"""App lifespan hook: close the delivery channels' open connections at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar

from runtime.messaging.channels import close_deliverers


def messaging_lifespan(app: Litestar) -> AbstractAsyncContextManager[None]:
    """Placed outside the runtime's lifespan, so the executor has stopped delivering first."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            runtime = getattr(app.state, "runtime", None)
            if runtime is not None:
                await close_deliverers(runtime.deliverers)

    return lifespan()
