"""Policy: every access decision (Casbin, over the files in policies/), the catalogue of
purposes and categories, and the write-time secret guard. It reads no database: the facts of
a request (the user's consent choices among them) are handed to it."""

from memory_store.policy.catalogue import Catalogue, Category, Purpose
from memory_store.policy.decisions import AccessRequest, Action, Policy, PolicyError, Relation
from memory_store.policy.secret_guard import refuse_secrets

__all__ = [
    "AccessRequest",
    "Action",
    "Catalogue",
    "Category",
    "Policy",
    "PolicyError",
    "Purpose",
    "Relation",
    "refuse_secrets",
]
