"""Statistical certification of the RNG: NIST SP 800-22 on raw bits and goodness-of-fit on game outcomes."""

ALPHA = 0.01
