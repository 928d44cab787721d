"""Database engine and session factory: the runtime's (``runtime.db``), used by the web app too.

SQLite runs as a real embedded database there (WAL, ``BEGIN IMMEDIATE``, one
writer lane per process); docs/database.md says what that mode supports.
"""

from runtime.db import LaneReentered, create_engine, create_sessionmaker, transaction

__all__ = ["LaneReentered", "create_engine", "create_sessionmaker", "transaction"]
