# Benchmark: build a string by repeated concatenation, print its length
# Code runs inside main() so variables are fast locals (module-level
# globals would be dict lookups, and would defeat CPython's in-place
# string append); the Lua versions use locals for the same reason.


def main():
    s = ""
    for i in range(200_000):
        s += str(i) + ","
    print(len(s))


main()
