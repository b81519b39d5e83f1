"""Small deterministic inputs for the object-store tests."""

from __future__ import annotations

import random

COUNTRIES = ["de", "fr", "us", "jp", None]


def orders_csv(n: int = 500, seed: int = 7, days: int = 18) -> bytes:
    rnd = random.Random(seed)
    lines = ["id,country,amount,ts,note"]
    for i in range(n):
        c = rnd.choice(COUNTRIES)
        amount = "" if rnd.random() < 0.05 else f"{rnd.randint(-10**6, 10**6) / 100:.2f}"
        ts = f"2024-0{rnd.randint(1, 3)}-{rnd.randint(10, 10 + days)} {rnd.randint(10, 23)}:{rnd.randint(10, 59)}:00"
        note = rnd.choice(['plain', '"with, comma"', '"quote ""x"""', "ünïcode", ""])
        lines.append(f"{i},{c or ''},{amount},{ts},{note}")
    return ("\n".join(lines) + "\n").encode()
