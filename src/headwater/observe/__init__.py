"""Observability: failure alerts (webhook, SMTP), structured logs and run metrics."""
