"""Training: objectives (losses), optimisers and schedules (optim), phases (the transfer schedule),
checkpoints, DDP plumbing (distributed), the epoch loop (engine.fit) and the train stage (run)."""
