"""Pragmatic Play's seamless wallet: form-encoded calls on `.html` paths, MD5-signed, JSON answers."""
