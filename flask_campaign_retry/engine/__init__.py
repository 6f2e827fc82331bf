"""The send path: freeze the recipient list, split it into batches, claim and submit each
batch with one provider call, write outcomes in bulk, and finalize the attempt exactly once.

May import: ``policy``, ``reconciliation``, ``alerts``, ``queue`` and the foundation modules
(``state``, ``models``, ``config``, ``statuses``, ...), and ``providers``. Never ``web``,
``recovery``, ``inbound`` or ``jobs``.
"""
