"""The use cases, one module each: memories (write, read, search, context, edit, forget),
consents, rights (export, forget me), audit (compliance and the access log), retention,
tokens, keys (and the KEK epoch schedule), reencryption (a store brought to the current
content format). Each runs policy -> audit -> storage -> keys in the same order; `guard` is
the one way a refusal is decided, recorded and raised."""
