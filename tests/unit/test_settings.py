"""Settings are read from the environment with no side effect; bootstrap provisions the JWT secret."""

from __future__ import annotations

import ast
import stat
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from roombook import bootstrap
from roombook.config import Settings, env_name, load_settings


def test_every_field_is_read_from_roombook_and_its_upper_case_name() -> None:
    defaults = Settings()
    for field in Settings.__struct_fields__:
        if field == "ray_address":
            continue
        assert env_name(field) == f"ROOMBOOK_{field.upper()}"
    settings = load_settings({"ROOMBOOK_SHARDS": "7", "ROOMBOOK_HOLD_TTL_S": "30", "ROOMBOOK_GROUP_COMMIT": "false"})
    assert (settings.shards, settings.hold_ttl_s, settings.group_commit) == (7, 30.0, False)
    assert settings.region == defaults.region


def test_ray_address_is_read_where_ray_reads_it() -> None:
    assert load_settings({"RAY_ADDRESS": "10.0.0.1:6390"}).ray_address == "10.0.0.1:6390"
    assert load_settings({"ROOMBOOK_RAY_ADDRESS": "10.0.0.1:6390"}).ray_address is None


def test_overrides_win_over_the_environment() -> None:
    assert load_settings({"ROOMBOOK_SHARDS": "7"}, shards=3).shards == 3


def test_a_bad_value_is_one_line_naming_the_setting() -> None:
    with pytest.raises(SystemExit, match="ROOMBOOK_SHARDS"):
        load_settings({"ROOMBOOK_SHARDS": "0"})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ROOMBOOK_OBJECT_STORE": "ftp"}, "ROOMBOOK_OBJECT_STORE"),
        ({"ROOMBOOK_OBJECT_STORE": "s3"}, "ROOMBOOK_S3_BUCKET"),
        ({"ROOMBOOK_OBJECT_STORE": "s3", "ROOMBOOK_S3_BUCKET": "b", "ROOMBOOK_S3_PRESIGN_S": "60"}, "PRESIGN"),
        ({"ROOMBOOK_IMAGE_MAX_BYTES": "0"}, "ROOMBOOK_IMAGE_MAX_BYTES"),
        ({"ROOMBOOK_SEARCH_CANDIDATE_PAGE": "0"}, "ROOMBOOK_SEARCH_CANDIDATE_PAGE"),
        ({"ROOMBOOK_BOOKING_CLAIM_TTL_S": "-1"}, "ROOMBOOK_BOOKING_CLAIM_TTL_S"),
        ({"ROOMBOOK_BOOKING_CLAIM_TTL_S": "61"}, "ROOMBOOK_BOOKING_CLAIM_TTL_S"),
        ({"ROOMBOOK_MYSQL_POOL_SIZE": "0"}, "ROOMBOOK_MYSQL_POOL_SIZE"),
        ({"ROOMBOOK_ACCESS_TOKENS_KEPT": "-1"}, "ROOMBOOK_ACCESS_TOKENS_KEPT"),
    ],
)
def test_photo_and_search_settings_out_of_range_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SystemExit, match=named):
        load_settings(environ)


def test_the_access_tokens_kept_reach_the_account_settings() -> None:
    environ = {"ROOMBOOK_JWT_SECRET": "s" * 32, "ROOMBOOK_ACCESS_TOKENS_KEPT": "0"}

    assert bootstrap.auth_settings(load_settings(environ)).access_tokens_kept == 0
    assert bootstrap.auth_settings(load_settings({"ROOMBOOK_JWT_SECRET": "s" * 32})).access_tokens_kept == 4096


def test_reading_settings_writes_nothing(tmp_path: Path) -> None:
    settings = load_settings({"ROOMBOOK_DATA_DIR": str(tmp_path / "data")})
    msgspec.structs.asdict(settings)
    assert not (tmp_path / "data").exists()


def test_config_imports_nothing_but_the_domain() -> None:
    probe = "import sys, roombook.config; print(sorted(m for m in sys.modules if m.startswith('roombook.')))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    modules = ast.literal_eval(loaded)
    assert modules and all(
        m in ("roombook.config", "roombook.domain") or m.startswith("roombook.domain.") for m in modules
    )


def test_the_jwt_secret_is_created_once_private_and_then_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    first = bootstrap.ensure_jwt_secret(settings)
    path = tmp_path / bootstrap.JWT_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert bootstrap.ensure_jwt_secret(settings) == first
    assert bootstrap.auth_settings(settings).jwt_secret == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [bootstrap.JWT_SECRET_FILE]  # no temporary left


def test_a_configured_jwt_secret_writes_no_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), jwt_secret="s" * 40)
    assert bootstrap.ensure_jwt_secret(settings) == "s" * 40
    assert list(tmp_path.iterdir()) == []


def test_an_empty_secret_file_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / bootstrap.JWT_SECRET_FILE).write_text("\n")
    with pytest.raises(SystemExit, match="empty"):
        bootstrap.ensure_jwt_secret(Settings(data_dir=str(tmp_path)))


def test_repr_shows_no_secret() -> None:
    settings = Settings(jwt_secret="topsecret" * 4, global_dsn="mysql://u:hunter2@db/x", smtp_password="pw-9")
    shown = repr(settings)
    assert "topsecret" not in shown and "hunter2" not in shown and "pw-9" not in shown


def test_a_ray_runtime_env_is_a_json_object_or_refused_in_one_line() -> None:
    settings = load_settings({"ROOMBOOK_RAY_RUNTIME_ENV": '{"pip": ["roombook==0.1.0"]}'})
    assert settings.runtime_env == {"pip": ["roombook==0.1.0"]}
    assert load_settings({}).runtime_env is None
    for bad in ("[1]", "{not json"):
        with pytest.raises(SystemExit, match="ROOMBOOK_RAY_RUNTIME_ENV"):
            load_settings({"ROOMBOOK_RAY_RUNTIME_ENV": bad})
