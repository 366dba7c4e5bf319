"""The coordinator's parts, one `ComponentResource` each, and the Docker target that realises their specs."""
