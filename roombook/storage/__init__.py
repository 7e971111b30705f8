"""Ports (storage/ports.py) and their adapters, each named <tech>_<role>.py."""
