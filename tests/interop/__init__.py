"""Interop tests: op-baton against an independent js-libp2p peer configured like op-node."""
