"""Data sets: the embedded procedural landscape generator (``synth``) and loaders."""
