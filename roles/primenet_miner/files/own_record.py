"""The node's own record in discovery, as the node reads it: run inside the miner container by the role.

Discovery answers `GET /api/nodes/<address>` only to the node itself (a request signed by its key) or to its admin,
so the check runs where the node key is. Prints one JSON line: {"node", "status", "record"} (record null unless
discovery answered 200); exit status 0 whenever discovery answered, 2 when it could not be asked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

from primenet.core.auth import RequestSigner
from primenet.core.keys import account_from_key, read_key_file


def main() -> int:
    node = account_from_key(read_key_file(Path(os.environ["PRIMENET_NODE_KEY_FILE"])))
    url = f"{os.environ['PRIMENET_DISCOVERY_URL'].rstrip('/')}/api/nodes/{node.address}"
    signer = RequestSigner(node, audience="discovery", chain_id=int(os.environ.get("PRIMENET_CHAIN_ID", "31337")))
    try:
        reply = httpx.get(url, auth=signer, timeout=10.0)
    except httpx.HTTPError as exc:
        print(json.dumps({"node": node.address, "status": None, "error": f"{type(exc).__name__}: {exc}"}))
        return 2
    record = reply.json() if reply.status_code == 200 else None
    print(json.dumps({"node": node.address, "status": reply.status_code, "record": record}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
