"""The Keras trainer (needs the [train] extra)."""
