"""Benchmarks of flask-campaign-retry (issue 7): ``python -m benchmarks.run_all [--quick]``.

Every figure is measured against the real PostgreSQL and Redis servers and the fake Mailgun server
on loopback (in its own process), through the real Mailgun provider, and printed with its target.
"""
