"""Per-user webhooks: signed (Standard Webhooks + upstream's headers), SSRF-guarded, retried, logged.

Emit with ``WebhookEmitter(redis, sessionmaker).emit(user_id, event, data, key=...)``
(``emit.py``); the bot-manager's ``WebhookWorker`` (``worker.py``) delivers.
"""
