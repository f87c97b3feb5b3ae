"""Run files: writing, reading, validating, reporting and comparing them."""
