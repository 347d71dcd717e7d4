def sum(arr):
    total = 0
    for n in arr:
        total += n
    return total

arr = [1, 2, 3]
print(sum(arr))
