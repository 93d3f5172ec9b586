"""Storage: the database, the idempotence stores and the image files, each raising its own errors."""
