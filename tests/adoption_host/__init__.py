"""A second host app, written like a typical existing Flask app, that adopts the extension
through the README's "Adopting in an existing app" steps only (tests/test_adoption_host.py).

``before.py`` is the app as it was (its own ``status`` column, its own per-recipient ``Email``
rows, Flask-Mail settings); ``app.py`` is the same app after adopting.
"""
