"""Generators (yield, yield from, send, throw, return value) and asyncio
coroutines."""
import asyncio


def ticker(n):
    for i in range(n):
        yield f"tick-{i}"
    return "done"


def delegate():
    result = yield from ticker(2)
    yield result


def echo():
    received = None
    while True:
        try:
            received = yield received
        except KeyError:
            received = "caught"


async def worker(name, delay):
    await asyncio.sleep(delay)
    return f"{name} finished"


async def main():
    first = await worker("a", 0)
    results = await asyncio.gather(worker("b", 0.01), worker("c", 0.02))
    return [first] + results


print(list(ticker(3)))
print(list(delegate()))
e = echo()
next(e)
print(e.send("hello"))
print(e.throw(KeyError))
e.close()
print(sum(x * x for x in range(4)))
print(asyncio.run(main()))
