"""A real service served over HTTPS with the TLS settings: a client that trusts the private CA (passed in, or through
`SSL_CERT_FILE` as the docs advise) reaches it; a client that does not, or plain HTTP, does not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from primenet.core.tls import client_context
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from tlscerts import make_certs


async def test_discovery_serves_https_to_clients_that_trust_its_ca(
    devnet: DevnetState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs, stranger = make_certs(tmp_path / "ours"), make_certs(tmp_path / "theirs")
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        key_prefix="tls" + str(free_port()),
        tls_cert_file=certs.cert_file,
        tls_key_file=certs.key_file,
    )
    tls = settings.tls()
    assert tls is not None
    port = free_port()
    with serve_in_thread(create_discovery(settings), port=port, tls=tls) as url:
        assert url == f"https://127.0.0.1:{port}"
        async with httpx.AsyncClient(verify=client_context(certs.ca_file), timeout=10) as trusting:
            response = await trusting.get(f"{url}/health")
        assert response.status_code == 200, response.text

        # The documented way for every client of a process: SSL_CERT_FILE names the private CA.
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))
        async with httpx.AsyncClient(timeout=10) as from_env:
            assert (await from_env.get(f"{url}/health")).status_code == 200

        # A client trusting another CA refuses the server; plain HTTP gets no answer from the TLS port.
        monkeypatch.setenv("SSL_CERT_FILE", str(stranger.ca_file))
        async with httpx.AsyncClient(timeout=10) as distrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await distrusting.get(f"{url}/health")
        async with httpx.AsyncClient(timeout=10) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{port}/health")
