"""Training: the ltx-trainer config schema, dataset preparation, captioning and the trainer.

Everything here needs the `train` extra (PEFT, pydantic) except what `cli/` imports at module
level, which is nothing: commands import these modules inside their functions.
"""
