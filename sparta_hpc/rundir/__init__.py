"""A run directory's state: file names (unit names, the point label), atomic writes, plans, manifest, archive,
ratings, events (their kinds and the one reader), provenance."""
