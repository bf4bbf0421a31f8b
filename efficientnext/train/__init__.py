"""Training: objectives (losses), optimisers and schedules (optim), phases (the transfer schedule),
checkpoints (typed records, resume), DDP plumbing (distributed), the epoch loop (engine.fit) and its epoch
hooks (checkpointing, console, DVCLive, the sweep's report), and the train stage (train)."""
