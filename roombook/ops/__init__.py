"""Operator commands behind `roombook migrate|seed|shards|search|admin`: each takes Settings, opens
what it needs through roombook.bootstrap, prints what it did and closes everything again."""
