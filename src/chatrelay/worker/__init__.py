"""The worker: runs model generations and streams them into the engine."""
