"""Queries and changes shared by the pages, the public API and the CLI."""
