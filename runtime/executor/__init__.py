"""Executors drive a Runtime: the same ``Runtime.work`` job, triggered two ways.

- ``runtime.executor.local.LocalExecutor``: asyncio tasks inside the web
  process (``touchflow serve`` on SQLite), woken by an ``asyncio.Event``.
- ``runtime.executor.arq_worker.run_worker``: arq workers (``touchflow worker``),
  any number, woken by jobs in Redis; a cron sweep every
  ``SWEEP_INTERVAL_SECONDS`` re-finds due work in the database, and while
  Redis is away the worker sweeps the database itself
  (``runtime.executor.supervise``).

For tests and scripts, ``Runtime.drain()`` runs until nothing is due.
"""
