"""An operator's mistake as one line: a store DSN that names no adapter, a store that does not
open, a data dir that cannot be written. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import asyncmy.errors

from roombook import bootstrap
from roombook.config import Settings, env_name
from roombook.domain.accounts import Region
from roombook.domain.errors import RoombookError


def store_dsn_problem(settings: Settings) -> str | None:
    """What is wrong with the first store DSN set in `settings`, found before anything connects."""
    for name in ("global", *(region.value for region in Region)):
        if not getattr(settings, f"{name}_dsn"):
            continue  # the default: a SQLite file under the data dir
        try:  # only parses the DSN: a store opens nothing before `async with`
            if name == "global":
                bootstrap.global_store(settings)
            else:
                bootstrap.regional_store(settings, Region(name))
        except ValueError as exc:  # the adapters' messages never quote a password
            return f"bad {env_name(f'{name}_dsn')}: {exc}"
    return None


def failure_line(exc: BaseException, settings: Settings) -> str | None:
    """The line an operator reads for `exc`, or None when it is not theirs to fix."""
    match exc:
        case RoombookError():  # a refusal or an unavailable store: its message is written for people
            return str(exc)
        case asyncmy.errors.OperationalError() | asyncmy.errors.InternalError() if len(exc.args) == 2:
            # what a pool that cannot connect raises (refused, unknown database, access denied)
            code, message = exc.args
            return f"the MySQL store did not open: {message} (MySQL error {code})"
        case OSError(filename=str() as filename) if _on_the_way(filename, settings.data_dir):
            where = "" if Path(filename).resolve() == Path(settings.data_dir).resolve() else f" ({filename})"
            return f"the data dir {settings.data_dir} cannot be created or written: {exc.strerror}{where}"
        case OSError(filename=str() as filename):
            return f"{filename}: {exc.strerror}"
        case OSError(strerror=str() as reason):  # e.g. a port taken between the check and the bind
            return reason
    return None


def _on_the_way(path: str, directory: str) -> bool:
    """Whether `path` is `directory`, inside it, or one of the folders it is created in."""
    path_, directory_ = Path(path).resolve(), Path(directory).resolve()
    return path_.is_relative_to(directory_) or directory_.is_relative_to(path_)
