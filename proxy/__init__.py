"""sidestep's imperative shell: the aiohttp server, upstream client, relay, config and CLI."""

__version__ = "0.1.0"
