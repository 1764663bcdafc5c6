"""Training: schedules, losses, the training step and the Ray Train launcher."""
