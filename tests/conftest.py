"""Fixtures shared by every test directory: real servers started on free loopback ports."""

pytest_plugins = ["tests.fixtures.redis_server"]
