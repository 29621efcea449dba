"""The encryption context a ciphertext is bound to: one canonical encoding, whatever the
attributes hold, and a different one for any change of any attribute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from memory_store.keys.payload import Binding

texts = st.text(max_size=40)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
bindings = st.builds(
    Binding,
    kind=st.sampled_from(["memory", "version"]),
    user_id=texts,
    memory_id=texts,
    version=st.integers(min_value=1, max_value=10**9),
    category=texts,
    expires_at=moments,
    key_id=texts,
)


@given(bindings)
def test_the_fast_encoding_is_the_canonical_json(binding: Binding) -> None:
    assert binding.encode() == binding.canonical_json()


@given(bindings)
def test_the_same_moment_in_another_zone_encodes_the_same(binding: Binding) -> None:
    elsewhere = binding.expires_at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    moved = Binding(
        binding.kind,
        binding.user_id,
        binding.memory_id,
        binding.version,
        binding.category,
        elsewhere,
        binding.key_id,
    )
    assert moved.encode() == binding.encode()


@given(bindings, st.data())
def test_changing_any_attribute_changes_the_encoding(binding: Binding, data: st.DataObject) -> None:
    field = data.draw(
        st.sampled_from(["kind", "user_id", "memory_id", "version", "category", "expires_at"])
    )
    values = {
        "kind": "version" if binding.kind == "memory" else "memory",
        "user_id": binding.user_id + "x",
        "memory_id": binding.memory_id + "x",
        "version": binding.version + 1,
        "category": binding.category + "x",
        "expires_at": binding.expires_at + timedelta(microseconds=1),
    }
    attributes = {
        "kind": binding.kind,
        "user_id": binding.user_id,
        "memory_id": binding.memory_id,
        "version": binding.version,
        "category": binding.category,
        "expires_at": binding.expires_at,
        "key_id": binding.key_id,
    }
    changed = Binding(**{**attributes, field: values[field]})  # type: ignore[arg-type]
    assert changed.encode() != binding.encode()
