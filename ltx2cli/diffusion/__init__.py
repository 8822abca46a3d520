"""Schedules, noisers, steppers, guiders, patchifiers and conditioning items."""
