"""Typer commands: parse, validate, resolve settings, call the library, report.

Nothing here imports torch, numpy, transformers, safetensors, av or PIL at module level.
"""
