-- wrk script of the benchmark (bench/src/wrk.rs runs it): POST /api/checkout with
-- the JSON cart the built-in load sends (one unit of item 1), so the two load
-- generators ask the pipeline for the same work, and a done() that prints one
-- machine-readable line the benchmark parses instead of wrk's human output.
--
-- Why wrk at all: figures measured elsewhere (a Go port of this pipeline) come from
-- wrk, and a load generator of a different make tells what in a figure is the
-- pipeline's and what the load generator's.
--
-- No response() callback on purpose: wrk would then parse every response's headers
-- and body into Lua, which slows it and changes what is measured. Requests carry no
-- traceparent, so the gateway starts each trace (the benchmark counts complete traces
-- instead of checking known ids).
--
-- With several gateways (the cluster), WRK_GATEWAYS="host:port,host:port" sends each
-- wrk thread to the next gateway in turn; without it every thread uses the URL's.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"items":[{"id":1,"quantity":1}]}'

local gateways = {}
for address in string.gmatch(os.getenv("WRK_GATEWAYS") or "", "[^,]+") do
  table.insert(gateways, address)
end
local threads = 0

function setup(thread)
  if #gateways > 0 then
    local host, port = gateways[threads % #gateways + 1]:match("^(.+):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
    threads = threads + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,'
      .. '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},'
      .. '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
