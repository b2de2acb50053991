"""Memp Studio: procedural memory for LLM agents (the Memp method, arXiv 2508.06433)."""

__version__ = "0.1.0"
