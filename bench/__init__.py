"""Benchmarks that print numbers: `python -m bench pipeline|qq|core|knowledge|voice`."""
