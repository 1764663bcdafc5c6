"""Ray Tune sweeps: the D-ratio annealing of training (`d_ratio`) and the inversion settings
(`inversion`). The sweep definitions (search spaces, objective weights, schedulers) are plain
Python in the repository's `tune/` folder; this package holds what they call: the trial
functions, the objectives, and the results (`common`: table, best preset, HTML page)."""
