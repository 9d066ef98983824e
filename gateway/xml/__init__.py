"""xml layer."""
