"""Schedules, noisers, steppers, guiders, patchifiers and conditioning shared by pipelines and training."""
