"""Models: loading, training and the per-architecture look-ups (surgery)."""
