-- wrk script: GET the check path with a bearer token taken round-robin from the file $AG_TOKENS.
local tokens = {}
for line in io.lines(os.getenv("AG_TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/api/items", { ["Authorization"] = "Bearer " .. tokens[i] })
end
