"""Where a deployment lives: chain id, contract addresses and the block it was made in, as a JSON file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from primenet.core.errors import PrimenetError
from primenet.core.files import write_atomically


class DeploymentError(PrimenetError, ValueError):
    """A deployment file that is missing, not a file, unreadable or not a deployment; the message names the file."""


class Deployment(BaseModel):
    chain_id: int
    block: int = Field(description="block of the first deployment transaction; event scans start here")
    deployer: str
    federator: str
    validator: str
    contracts: dict[str, str] = Field(description="contract name -> address")
    unbonding_period_s: int
    stake_minimum: int = Field(description="stake per compute unit, token base units")

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError:
            raise KeyError(f"the deployment has no {name} contract") from None

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """The deployment in `path`; `DeploymentError` (one line naming the file and the problem) otherwise."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise DeploymentError(f"no deployment file at {path}: run `primenet chain deploy` first") from None
        except IsADirectoryError:
            raise DeploymentError(f"the deployment file {path} is a directory, not a file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DeploymentError(f"cannot read the deployment file {path}: {type(exc).__name__}") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problem = f"{where}: {first['msg']}" if where else first["msg"]
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise DeploymentError(f"{path} is not a deployment file: {problem}{more}") from None

    def save(self, path: Path) -> None:
        write_atomically(path, (self.model_dump_json(indent=2) + "\n").encode(), mode=0o644)
