"""Database engine and session factory: the runtime's (``runtime.db``), used by the web app too."""

from runtime.db import create_engine, create_sessionmaker, transaction

__all__ = ["create_engine", "create_sessionmaker", "transaction"]
