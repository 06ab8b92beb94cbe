-- Benchmark: build a string by repeated concatenation, print its length
-- Deliberately plain `..` on the growing string (not table.concat),
-- the honest equivalent of the aether and python versions.

local s = ""
for i = 0, 199999 do
    s = s .. tostring(i) .. ","
end
print(#s)
