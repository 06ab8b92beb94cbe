# Benchmark: map and list churn (insert, append, read back), print a checksum
# Code runs inside main() so variables are fast locals (module-level
# globals would be dict lookups, and would defeat CPython's in-place
# string append); the Lua versions use locals for the same reason.


def main():
    m = {}
    xs = []
    total = 0
    for i in range(200_000):
        m["k" + str(i % 1000)] = i
        xs.append(i)
        total = total + xs[i] + m.get("k" + str(i * 7 % 1000), 0)
    for x in xs:
        total = total + x
    for k in m:
        total = total + m[k]
    print(total + len(xs) + len(m))


main()
