"""Training one rung: loop, schedules, optimizer, checkpoints, metrics, W&B, distributed."""
