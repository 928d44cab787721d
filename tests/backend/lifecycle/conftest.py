"""The web app fixtures (``app``, ``client``, ``signed_in``...) for the lifecycle pages."""

from tests.backend.web.conftest import app, client, clock, signed_in

__all__ = ["app", "client", "clock", "signed_in"]
