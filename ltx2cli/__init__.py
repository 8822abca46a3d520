"""ltx2: one command-line tool for Lightricks' LTX-2 audio-video diffusion models."""

__version__ = "0.1.0"
