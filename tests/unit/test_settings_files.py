"""Settings from a secrets folder (`PRIMENET_SECRETS_DIR`): how a deployment passes a Redis URL or a token."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from primenet.cli.options import load_settings
from primenet.core.keys import SecretError
from primenet.core.settings import SECRETS_DIR_ENV, settings_from_secrets_dir
from primenet.discovery.settings import DiscoverySettings

pytestmark = pytest.mark.unit

TOKEN = "t" * 40


def secret(folder: Path, name: str, value: str, mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def test_files_set_settings_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret(tmp_path, "primenet_redis_url", "redis://:pw@127.0.0.1:7000/0")
    secret(tmp_path, "primenet_admin_token", TOKEN)
    secret(tmp_path, "manager_key", "0x" + "11" * 32)  # a key file for its own *_KEY_FILE setting: left alone
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("PRIMENET_REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = load_settings(DiscoverySettings, "discovery")
    assert settings.redis_url == "redis://:pw@127.0.0.1:7000/0"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == TOKEN
    assert "pw" not in repr(settings_from_secrets_dir(DiscoverySettings).keys())


def test_unset_folder_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRETS_DIR_ENV, raising=False)
    assert settings_from_secrets_dir(DiscoverySettings) == {}


def test_a_readable_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret(tmp_path, "primenet_admin_token", TOKEN, mode=0o644)
    with pytest.raises(SecretError, match="chmod 600") as caught:
        settings_from_secrets_dir(DiscoverySettings, {SECRETS_DIR_ENV: str(tmp_path)})
    assert TOKEN not in str(caught.value)


def test_a_misspelt_file_is_refused(tmp_path: Path) -> None:
    secret(tmp_path, "primenet_redis_uri", "redis://127.0.0.1:1/0")
    with pytest.raises(SecretError, match="PRIMENET_REDIS_URI does not exist"):
        settings_from_secrets_dir(DiscoverySettings, {SECRETS_DIR_ENV: str(tmp_path)})


def test_load_settings_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(typer.Exit) as caught:
        load_settings(DiscoverySettings, "discovery")
    assert caught.value.exit_code == 2
    assert "is not a folder" in capfd.readouterr().err
