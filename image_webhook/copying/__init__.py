"""Copying the images: where they may come from, fetching them, verifying them, and the copiers."""
