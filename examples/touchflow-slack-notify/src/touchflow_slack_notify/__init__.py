"""Touchflow node types from this package, as the ``touchflow.nodes`` entry point lists them."""

from touchflow_slack_notify.node import SlackNotify

NODE_TYPES = [SlackNotify]

__all__ = ["NODE_TYPES", "SlackNotify"]
