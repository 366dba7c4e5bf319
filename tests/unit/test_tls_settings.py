"""TLS settings (`core.tls`): a usable certificate and key pair is accepted; every unusable state is one line, and
each service's command exits 2 with it before it starts anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from primenet.chain.deployment import Deployment
from primenet.cli.main import app
from primenet.core.nodeaddr import node_url
from primenet.core.tls import TlsError, tls_files
from primenet.devnet.accounts import role_account
from tlscerts import make_certs

pytestmark = pytest.mark.unit
KEYS = {
    "PRIMENET_PROVIDER_KEY": role_account("provider").key.hex(),
    "PRIMENET_NODE_KEY": role_account("node").key.hex(),
    "PRIMENET_MANAGER_KEY": role_account("orchestrator").key.hex(),
    "PRIMENET_VALIDATOR_KEY": role_account("validator").key.hex(),
}
NOBODY = "0x" + "00" * 20
SERVICES = [["discovery"], ["orchestrator"], ["validator", "run"], ["miner", "run"]]


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PRIMENET_"):
            monkeypatch.delenv(name)


def test_a_usable_pair_is_accepted_and_none_means_plain_http(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    checked = tls_files(certs.cert_file, certs.key_file)
    assert checked is not None
    assert (checked.cert_file, checked.key_file) == (certs.cert_file, certs.key_file)
    assert tls_files(None, None) is None


def test_unusable_tls_settings_are_refused(tmp_path: Path) -> None:
    certs, other = make_certs(tmp_path / "a"), make_certs(tmp_path / "b")
    with pytest.raises(TlsError, match="PRIMENET_TLS_KEY_FILE is not set"):
        tls_files(certs.cert_file, None)
    with pytest.raises(TlsError, match="PRIMENET_TLS_CERT_FILE is not set"):
        tls_files(None, certs.key_file)
    with pytest.raises(TlsError, match="not a readable file"):
        tls_files(tmp_path / "absent.pem", certs.key_file)
    with pytest.raises(TlsError, match="do not load as a pair"):
        tls_files(certs.cert_file, other.key_file)
    certs.key_file.chmod(0o644)
    with pytest.raises(TlsError, match=r"mode 0644.*chmod 600"):
        tls_files(certs.cert_file, certs.key_file)


@pytest.mark.parametrize("command", SERVICES, ids=" ".join)
def test_every_service_refuses_a_key_others_can_read(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = make_certs(tmp_path / "certs")
    certs.key_file.chmod(0o644)
    # A deployment file that names nothing reachable: the miner reads it first, and the TLS check must come next,
    # before any chain call or transaction.
    Deployment(
        chain_id=31337, block=0, deployer=NOBODY, federator=NOBODY, validator=NOBODY, contracts={},
        unbonding_period_s=1, stake_minimum=1,
    ).save(tmp_path / ".devnet" / "deployment.json")  # fmt: skip
    env = {**KEYS, "PRIMENET_TLS_CERT_FILE": str(certs.cert_file), "PRIMENET_TLS_KEY_FILE": str(certs.key_file)}
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "invalid TLS settings" in lines[0]
    assert "chmod 600" in lines[0]
    assert "BEGIN" not in result.output  # no key material


def test_node_urls_take_the_node_scheme() -> None:
    assert node_url("127.0.0.1", 8091, "/invite") == "http://127.0.0.1:8091/invite"
    assert node_url("127.0.0.1", 8091, "/invite", "https") == "https://127.0.0.1:8091/invite"
    assert node_url("::1", 8091, "/", "https") == "https://[::1]:8091/"
    with pytest.raises(ValueError, match="neither http nor https"):
        node_url("127.0.0.1", 8091, "/", "ftp")
