"""Nebula: a fast Extract & Load engine."""
__version__ = "0.1.0"
