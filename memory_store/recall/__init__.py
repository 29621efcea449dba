"""Recall: ranking a user's memories against what the assistant asks (bm25: lexical)."""
