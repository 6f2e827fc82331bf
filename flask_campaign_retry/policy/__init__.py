"""The retry rules: who may be retried and when (eligibility, the retry window, attempts
left), the atomic Retry transition, clone to draft, automatic campaign retry, backoff, and
which tracking rows belong to a campaign row (its incarnation).

May import: ``queue`` (to enqueue work by name) and the foundation modules. Never ``engine``,
``web``, ``recovery`` or ``jobs``.
"""
