"""A rough, conservative estimate of how guessable a secret is.

Length alone let ``aaaa...`` (32 times), ``changeme-changeme-...`` and 16-character webhook
secrets through (issue 26). The estimate removes common words, drops characters that only
continue a sequence (``abcd``, ``4321``), then multiplies the remaining length by the
Shannon entropy of its character frequencies: repeats and small alphabets score low,
generator output scores high (``openssl rand -hex 32``: about 240 bits). It never
overestimates a pattern it knows; it cannot see every pattern, so a generator is still the
advice.
"""

from __future__ import annotations

import math
from collections import Counter

MIN_BITS = 128
MAKE_ONE = "`openssl rand -hex 32`"
WORDS = ("password", "passwd", "changeme", "change", "secret", "token", "deploy", "webhook",
         "admin", "letmein", "qwerty", "example", "default", "loon", "test", "hunter")


def estimated_bits(value: str) -> float:
    text = value.lower()
    for word in WORDS:
        text = text.replace(word, "\0")  # a known word is worth about one symbol
    kept = [c for i, c in enumerate(text)
            if i == 0 or abs(ord(c) - ord(text[i - 1])) != 1]  # sequences count once
    if not kept:
        return 0.0
    n = len(kept)
    entropy = -sum(k / n * math.log2(k / n) for k in Counter(kept).values())
    return entropy * n


def guessable(value: str, min_bits: int = MIN_BITS) -> bool:
    return estimated_bits(value) < min_bits
