"""A project whose members table is pulled with a watermark (the puller tests)."""
