"""The copy of the images: fetch each one a notification names, verify it, keep it in the image store."""
