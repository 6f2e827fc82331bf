"""Crash recovery: the sweep that expires leases, reconciles UNCERTAIN batches, finalizes
settled attempts and requeues lost work (worker start, RQ's scheduler, ``flask campaign-retry
recover``).

May import: ``engine``, ``reconciliation``, ``policy``, ``queue`` and the foundation modules.
Never ``web`` or ``jobs``.
"""
