"""Steps whose variables hold more values than the suite's budget
(limits.value_budget: 12, test_budget): from the value that reaches it on,
each reads "<value budget reached>"; the values before stay exact."""


def scalars():
    a = 1
    b = 2.5
    c = "three"
    d = None
    e = True
    f = 6
    g = 7
    h = 8
    i = 9
    j = 10
    k = 11
    m = 12
    n = 13
    o = 14
    return a + f + g + h + i + j + k + m + n + o


def nested():
    small = [1, 2]
    big = {"k%d" % i: [i, i] for i in range(6)}
    after = "later"
    big["k0"].append(3)
    small.append(big)
    return small, after


def within():
    few = [1, 2, 3]
    few.append(4)
    return few


scalars()
nested()
within()
