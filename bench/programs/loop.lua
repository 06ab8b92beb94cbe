-- Benchmark: 10,000,000-iteration integer while loop
-- All operands are integers, so + * % stay in Lua's integer subtype.

local total = 0
local i = 0
while i < 10000000 do
    total = (total + i * 3) % 1000003
    i = i + 1
end
print(total)
