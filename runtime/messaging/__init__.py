"""Messaging policy around delivery: signed links, tracking, suppression, fatigue, the send gate.

``runtime.delivery`` moves bytes to providers; this package decides whether,
when and in what form a message may leave (issue 7).
"""
