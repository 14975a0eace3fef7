"""The wire formats of the protocol presets: frames decoded into data and control messages."""
