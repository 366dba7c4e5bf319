"""primenet: a peer-to-peer GPU compute network (Prime Protocol design)."""

__version__ = "0.1.0"
