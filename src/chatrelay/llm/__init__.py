"""Model backends: each turns a conversation into a stream of text deltas."""
