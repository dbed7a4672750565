"""Linker: link customer profiles to external systems through lookup adaptors."""

__version__ = "0.1.0"
