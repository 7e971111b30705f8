"""roombook: a room booking platform where one writer owns each room's nights."""

__version__ = "0.1.0"
