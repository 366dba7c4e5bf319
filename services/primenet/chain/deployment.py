"""Where a deployment lives: chain id, contract addresses and the block it was made in, as a JSON file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


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
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no deployment file at {path}: run `primenet chain deploy` first") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)
