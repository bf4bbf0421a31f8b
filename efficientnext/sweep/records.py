"""What a trial records (Optuna user attributes) and which metrics trials.csv and select read.

A leaf of the sweep package, so select and the report can read a study without the training engine.
"""

OBJECTIVE = "macro_f1"
METRICS = ("macro_f1", "accuracy", "roc_auc_ovr")  # the trials.csv columns and the choices of select.metric
PRUNE_REASON_ATTR = "prune_reason"   # why the pruner stopped a trial
REJECTED_ATTR = "rejected"           # why the constraints refused a trial (it never trained)
PINNED_ATTR = "pinned"               # the rows sweep.fixed and the table's fixed seed set
WORKER_ATTR = "worker"               # host:pid of the process that ran the trial
FAIL_REASON_ATTR = "fail_reason"     # why a trial failed (non-finite loss, out of memory, dead worker)
