"""chatrelay: a scalable, real-time AI chat service."""

__version__ = "0.1.0"
