"""The host-facing surfaces: the blueprint's routes (CSRF, authorization, JSON or form
answers), the panel partial, the delivery report, and the ``flask campaign-retry`` CLI group.

May import every other subpackage (it is the top layer below ``extension``) and ``jobs``.
"""
