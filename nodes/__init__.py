"""Node types: the SDK (``nodes.sdk``) and the built-in library (``nodes.builtin``)."""
