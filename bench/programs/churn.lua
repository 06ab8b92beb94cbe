-- Benchmark: map and list churn (insert, append, read back), print a checksum
-- Lua lists are 1-based: element i of the 0-based loop lives at xs[i + 1].

local m = {}
local xs = {}
local total = 0
for i = 0, 199999 do
    m["k" .. tostring(i % 1000)] = i
    xs[#xs + 1] = i
    total = total + xs[i + 1] + (m["k" .. tostring(i * 7 % 1000)] or 0)
end
for _, x in ipairs(xs) do
    total = total + x
end
local count = 0
for _, v in pairs(m) do
    total = total + v
    count = count + 1
end
print(total + #xs + count)
