"""A small program for ctrecctl show's expected listing."""


def scale(values, factor):
    out = []
    for v in values:
        out.append(v * factor)
    return out


def describe(name, total):
    text = f"{name}: {total}"
    print(text)
    return len(text)


numbers = scale([1, 2, 3], 2)
total = sum(numbers)
width = describe("total", total)
print("width", width)
