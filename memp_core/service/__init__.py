"""memp serve: the HTTP face over memp_core.agents.

REST under /v1, MCP at /mcp and OTLP trace intake at /v1/traces; thin handlers only.
"""
