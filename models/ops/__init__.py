"""Operators that PyTorch itself lacks (pure-PyTorch implementations, optional faster backends)."""
