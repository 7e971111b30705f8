"""What the HTTP servers (the app's and the edge's) accept before a request reaches a handler."""

from __future__ import annotations

# A search's documented parameters at their longest, percent-encoded (up to 12 bytes a character),
# make a request line past aiohttp's default of 8,190 bytes, which it would refuse with a bare 400
# before the app sees it. Given to run_app (or AppRunner) as keywords: they reach each connection's
# request handler; run_app's `handler_args` is not such a keyword (it is Application's).
MAX_LINE_SIZE = 65_536
HANDLER_ARGS: dict[str, int] = {"max_line_size": MAX_LINE_SIZE}
