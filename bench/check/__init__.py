"""Post-run checker of a Locust run against roombook: `python -m bench.check --help`."""
