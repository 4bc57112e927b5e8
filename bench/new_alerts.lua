-- wrk script: every request POSTs NEW alerts. BENCH_BODY_FILE holds a payload template in
-- which BENCH_MARKER stands in the alerts' fingerprints and labels; each request replaces it
-- with "<run><counter>" in hex, so no two requests (of this run, or of runs with another
-- BENCH_RUN) carry the same alert. The marker and its replacement have the same length, so
-- every request body has the template's size. Run wrk with -t1: the counter is per thread.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local template = f:read("*a")
f:close()
local marker = assert(os.getenv("BENCH_MARKER"))
local run = tonumber(os.getenv("BENCH_RUN") or "0")
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
}
local counter = 0

request = function()
  counter = counter + 1
  local id = string.format("%04x%08x", run, counter)
  local body = template:gsub(marker, id)
  return wrk.format("POST", nil, headers, body)
end
