"""Functions whose locals are all scalars, rebound at every line: the steps
ctrec encodes in place. Bools both ways, None, ints at the 64-bit edges,
floats, ASCII and other strings (past the byte limit: cut there, or before
a character the limit would split; a lone surrogate), and a function with
more locals than the in-place path takes."""


def flags():
    on = True
    off = False
    on, off = off, on
    nothing = None
    nothing = off
    return nothing


def numbers():
    i = 2**63 - 1
    j = -(2**63)
    i += 1
    j -= 1
    k = 0
    x = 1.5
    x /= 3
    y = -0.0
    y = float("inf")
    i = k
    return i, j, x, y


def texts():
    s = "ascii"
    s += "!"
    t = "\u00e9t\u00e9"
    s = t
    t = ""
    s = "z" * 1200
    t = "\u00e9" * 1200
    s = "a" * 999 + "\u00e9"
    t = "lone \udc80 surrogate"
    return s, t


def many():
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = 0
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = b9 = False
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = 1.0
    d0 = d1 = d2 = d3 = d4 = d5 = None
    a9 = b9 = c9 = d5 = "last"
    return [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, b0, b1, b2, b3, b4, b5, b6, b7, b8,
            b9, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, d0, d1, d2, d3, d4, d5]


count = 0
for fn in (flags, numbers, texts, many):
    fn()
    count += 1
print(count)
