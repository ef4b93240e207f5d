"""The SoftSwiss-style batched wallet protocol (BGaming and other studios on SoftSwiss's service)."""
