"""Adapters for the frameworks assistants are built with, each an optional extra and each a
client of a running server: `langgraph` (a LangGraph store) and `agent_framework` (a context
provider for Microsoft Agent Framework)."""
