"""``python -m tests.mcp_stdio_server``: the tests' MCP server on stdin and stdout, each request
in the session its ``_meta`` names (tests/mcp_tools.py has its tools)."""

from __future__ import annotations

if __name__ == "__main__":
    from tests.mcp_tools import stdio_main

    stdio_main()
