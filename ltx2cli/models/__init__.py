"""PyTorch modules and weight loading for LTX-2 and LTX-2.3. No printing, no downloads."""
