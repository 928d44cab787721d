"""Flows as the pages, API and CLI see them: list summaries, results per node, runs."""
