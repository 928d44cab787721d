"""The message template language lives in the SDK (``nodes.sdk.templates``); re-exported here."""

from nodes.sdk.templates import TemplateProblem, check_template, render_template

__all__ = ["TemplateProblem", "check_template", "render_template"]
