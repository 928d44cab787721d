"""The pages people use: server-rendered HTML, with htmx fragments for partial updates."""
