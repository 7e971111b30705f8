"""Fault injection against a real roombook: the MySQL fault proxy and the fault suite."""
