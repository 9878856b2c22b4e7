"""Seeing a run: `sparta-hpc status` (where a run is now, in plain text) and `sparta-hpc report`
(one self-contained HTML page of figures).

    timeline.py   events.jsonl -> task attempts (submit/adopt to done/failed), the run's position
    status.py     the status text, the driver-lock probe, Slurm job states, --watch
    data.py       what the report reads from the run directory (archives, pairs, logs, evaluation)
    figures.py    the report's matplotlib figures (Agg backend), each one PNG
    page.py       the HTML page: figures embedded as base64, a note where data is missing

Both only read the run directory; neither takes the driver's lock. Matplotlib and
h5py are imported by the report only, never by `status` (a login node may lack them).
"""
