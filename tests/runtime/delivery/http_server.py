"""A real HTTP server on loopback for provider tests: it can fail, hang, then recover.

Lives in tests/support/http.py; re-exported here for the tests that import it from this path.
"""

from tests.support.http import Received, Script, http_server

__all__ = ["Received", "Script", "http_server"]
