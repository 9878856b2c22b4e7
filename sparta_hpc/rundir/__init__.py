"""A run directory's state: file names, atomic writes, manifest, archive, ratings, events, provenance."""
