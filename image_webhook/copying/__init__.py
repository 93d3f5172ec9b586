"""Copying: the images a notification names, fetched from the sources IMAGE_SOURCES allows."""
