"""The agents' door: what agents may do (retrieve, report, give feedback, propose),
by key and scope.

No HTTP here: the REST routes, the MCP tools and the OTLP intake in memp_core.service all
call these operations, so the three doors apply the same rules.
"""
