"""Events that providers send back after the send: the Mailgun delivery-event webhook route
(signature, replay and age checks) applied to recipient rows through ``reconciliation``.

May import: ``engine``, ``reconciliation``, ``providers``, ``queue`` and the foundation modules.
Never ``web`` or ``recovery``.
"""
