"""bronze -> silver -> gold, and the optional per-dataset transform functions."""
