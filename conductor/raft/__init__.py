"""Raft consensus for the conductor: a sans-IO core (`core`), its value types
(`types`) and the wire messages with their binary codec (`messages`)."""
