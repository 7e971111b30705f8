"""bench.api's profile summary: shares of the event loop's thread, the other threads apart."""

from __future__ import annotations

from bench.api.profile import summarize

MAIN = "run_app (aiohttp/web.py:502)"
STACKS = "\n".join(
    [
        f"{MAIN};handle (roombook/http/app.py:10);book (roombook/services/bookings.py:20) 30",
        f"{MAIN};handle (roombook/http/app.py:10) 10",
        f"{MAIN} 50",  # the loop polling: idle
        "Thread._bootstrap (threading.py:1002);_write (roombook/storage/mail/file_mail.py:40) 60",
        "Thread._bootstrap (threading.py:1002);Condition.wait (threading.py:320) 70",  # a thread waiting
    ]
)


def test_shares_are_of_the_loop_threads_busy_samples_and_threads_are_counted_apart(tmp_path):
    path = tmp_path / "stacks.txt"
    path.write_text(STACKS + "\n")
    summary = summarize(path)
    assert "the event loop's thread 40 busy samples, other threads 60, 120 idle" in summary
    assert "   100.0%  25.0%  handle (roombook/http/app.py)" in summary
    assert "    75.0%  75.0%  book (roombook/services/bookings.py)" in summary
    threads = summary.split("other threads, top own")[1]
    assert "100.0%  _write (roombook/storage/mail/file_mail.py)" in threads
    assert "_write" not in summary.split("other threads, top own")[0]  # not mixed into the loop's shares
