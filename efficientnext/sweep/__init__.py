"""The constrained Bayesian sweep (§5): the paper's search space and constraints as data (space.py), trials
(objective.py), Optuna studies and workers (study.py, storage.py), report inputs (outputs.py) and the
best-configuration selection (select.py)."""
