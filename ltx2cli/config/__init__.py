"""User-facing settings: dataclasses, strict YAML loading, preset merging. Torch-free."""
