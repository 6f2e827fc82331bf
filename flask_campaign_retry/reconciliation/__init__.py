"""What the provider knows about recipients we are unsure of: ask its event log about
UNCERTAIN batches and apply the evidence (also the evidence of delivery webhooks) to recipient
rows with compare-and-set updates that never downgrade a final state.

May import: ``providers`` and the foundation modules. Never ``engine``, ``web`` or ``recovery``.
"""
