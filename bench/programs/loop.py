# Benchmark: 10,000,000-iteration integer while loop
# Code runs inside main() so variables are fast locals (module-level
# globals would be dict lookups, and would defeat CPython's in-place
# string append); the Lua versions use locals for the same reason.


def main():
    total = 0
    i = 0
    while i < 10_000_000:
        total = (total + i * 3) % 1_000_003
        i = i + 1
    print(total)


main()
