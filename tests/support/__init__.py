"""Test helpers shared by every test folder: clocks, loopback SMTP and HTTP servers, the web app.

- ``clock``: which fake clock to use (the SDK's ``FixedClock``, the runtime's ``FakeClock``,
  the web tests' ``MovableClock``).
- ``smtp``: ``Mailbox`` and ``smtp_server()``, a real aiosmtpd server on a kernel-picked port.
- ``http``: ``serve()`` (any handler on a kernel-picked loopback port) and the recording servers
  built on it (``receiver()``, ``hook_receiver()``, ``http_server(Script)``).
- ``net``: loopback sockets bound to a kernel-picked port, for servers that take one.
- ``live``: ``live_app()``, the real app under uvicorn in a thread (the browser tests).
- ``plugins``: ``install()``, a plugin package's entry points on ``sys.path`` for one test.
- ``web``: ``SharedApp``, one web app per database for the session.
- ``stores``: a fresh SQLite or PostgreSQL database per session (migrated with Alembic), emptied
  between tests, and whether Redis is there.

The modules these came from (tests/runtime/conftest.py, tests/nodes/receiver.py,
tests/runtime/delivery/http_server.py, tests/backend/web/support.py,
tests/browser/conftest.py) re-export them, so older imports keep working.
"""
