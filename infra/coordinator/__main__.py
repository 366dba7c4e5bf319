"""The primenet coordinator on a Docker host: `pulumi up` in this folder (see docs/coordinator.md)."""

from __future__ import annotations

import pulumi

from components.spec import StackNaming
from components.stack import CoordinatorStack
from config import load_config

stack = CoordinatorStack(load_config(), StackNaming.current())
for name, value in stack.outputs.items():
    pulumi.export(name, value)
