"""The Touchflow engine: flow graphs, journey stepping, waits, outbox, executors, rules."""
