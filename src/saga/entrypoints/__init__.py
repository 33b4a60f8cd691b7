"""The edges of the service: HTTP API, background worker, CLI, and the container that wires them."""
