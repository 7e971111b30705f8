"""The aiohttp front: JSON API under /api/v1 (and, later, server-rendered pages)."""
