"""The RQ binding: job names, the app-bound job class, the app's queue, workers, and the
embedded development queue.

May import: the foundation modules (``state``, ``config``, ``clock``, ...). Never anything
that sends, retries or serves HTTP.
"""
