"""A real HTTP server on a loopback port that records what it receives (webhook targets).

Lives in tests/support/http.py; re-exported here for the tests that import it from this path.
"""

from tests.support.http import Received, Receiver, receiver

__all__ = ["Received", "Receiver", "receiver"]
