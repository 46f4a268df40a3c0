"""Thin CLI commands: parse a config dataclass, call the library. Heavy imports happen inside each command."""
