"""Helpers for host apps' own tests: a fake Mailgun HTTP server on loopback with scripted
faults and its event log, and signed Mailgun webhook bodies.

May import anything in the package; nothing in the package imports it.
"""
