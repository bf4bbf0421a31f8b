"""The constrained Bayesian sweep (§5): constraints as data (constraints.py, over the space in
efficientnext/search_space.py), which study a sweep works on (identity.py), trials (objective.py, what they
record: records.py), Optuna studies and workers and the sweep stage (sweep.py, storage.py), report inputs
(outputs.py) and the select stage (select.py)."""
