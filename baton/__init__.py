"""op-baton: shared infrastructure (command line, logging) for the p2p gossip node and the conductor."""

__version__ = "0.1.0"
