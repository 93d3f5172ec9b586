"""The surfaces: the HTTP blueprints (webhook, read API, page, operations), their one error path, the commands."""
