-- wrk script: GET the URL's path with a bearer token from the file $AG_TOKENS. Each of the $AG_WRK_THREADS
-- wrk threads takes its own slice of the file and walks it round-robin, so between two uses of a token
-- roughly every other token of the file is used once (two threads starting on the same token would let
-- the second one find it cached right after the first verified it).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local tokens, i = {}, 0
function init(args)
  local all = {}
  for line in io.lines(os.getenv("AG_TOKENS")) do
    if #line > 0 then all[#all + 1] = line end
  end
  local n = tonumber(os.getenv("AG_WRK_THREADS") or "1")
  local per = math.floor(#all / n)
  for k = (id - 1) * per + 1, id * per do tokens[#tokens + 1] = all[k] end
  assert(#tokens > 0, "bearer.lua: fewer tokens than threads in " .. os.getenv("AG_TOKENS"))
end

request = function()
  i = i % #tokens + 1
  return wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
