"""Observability: the request's context, the log lines and the metrics."""
