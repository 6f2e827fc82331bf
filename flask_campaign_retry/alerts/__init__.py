"""Outbound admin webhooks: decide which alert an attempt raises, keep pending deliveries
and dedupe keys in Redis, sign and POST them from an RQ job with backoff and a rate limit, and
refuse private or metadata targets.

May import: ``queue`` and the foundation modules. Never ``engine``, ``web`` or ``recovery``.
"""
