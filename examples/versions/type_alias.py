# Needs Python 3.12 or later: the type statement (PEP 695). Python 3.11
# stops with a SyntaxError before running anything.
type Pair = tuple[int, int]


def total(p: Pair) -> int:
    return p[0] + p[1]


print(total((20, 22)))
