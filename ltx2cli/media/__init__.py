"""Video, audio and image reading and writing (PyAV, Pillow) and metadata sidecars."""
