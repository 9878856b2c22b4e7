"""`sparta-hpc data prepare`: the paper's per-task duel pools and evaluation files from the pinned
public sources (docs/data.md). sources.py: pins and reading; tasks.py: the tasks and converters;
clean.py: overlap on the identifying part; build.py: one task's files; run.py: the folder, the
manifest, reruns."""
