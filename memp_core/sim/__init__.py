"""The household text world (ALFWorld-compatible) and the agents that act in it."""
