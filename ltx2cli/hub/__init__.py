"""Model cache manager: catalog, data dir, pull/list/rm/verify. Torch-free."""
