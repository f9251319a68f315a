"""A schemas package with mistakes, for `headwater validate`."""
