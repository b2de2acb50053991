"""memp serve: the HTTP face (REST under /v1, MCP at /mcp, OTLP at /v1/traces) over memp_core.agents."""
