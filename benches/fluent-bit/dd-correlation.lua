-- Datadog correlation of Envoy access logs as Fluent Bit users usually write it: a `parser`
-- filter has merged Envoy's JSON `log` into the record; this script adds dd.trace_id and
-- dd.span_id, hash and phase, status and the duration in nanoseconds, and moves Envoy's keys to
-- Datadog's standard attributes (as Datadog's attribute remapper does by default).
--
-- Trace ids stay strings: Lua numbers are doubles, exact only up to 2^53, and Datadog's 64-bit
-- ids mostly lie above it.

local HASH = os.getenv("GIT_COMMIT_SHA")
local PHASE = os.getenv("DEPLOY_PHASE")
local MAX_U64 = "18446744073709551615"

-- Envoy writes null (nil here) or "-" for a value it does not have.
local function present(v)
  return v ~= nil and v ~= "-" and v ~= ""
end

-- A Datadog id: 1 to 20 decimal digits, not zero, at most 2^64 - 1.
local function datadog_id(v)
  if type(v) == "number" then
    -- Only exact below 2^53; larger ones arrive as strings from Envoy anyway.
    if v >= 1 and v < 2^53 and v == math.floor(v) then return string.format("%d", v) end
    return nil
  end
  if type(v) ~= "string" or not v:find("^%d+$") or #v > 20 then return nil end
  if #v == 20 and v > MAX_U64 then return nil end
  if not v:find("[1-9]") then return nil end
  return v
end

-- 16 hex digits as a decimal string, exactly: base-10^7 limbs, least significant first.
local function hex64_to_decimal(hex)
  local limbs = { 0 }
  for i = 1, 16 do
    local carry = tonumber(hex:sub(i, i), 16)
    for j = 1, #limbs do
      local v = limbs[j] * 16 + carry
      limbs[j] = v % 10000000
      carry = math.floor(v / 10000000)
    end
    if carry > 0 then limbs[#limbs + 1] = carry end
  end
  local out = { string.format("%d", limbs[#limbs]) }
  for j = #limbs - 1, 1, -1 do out[#out + 1] = string.format("%07d", limbs[j]) end
  return table.concat(out)
end

-- W3C traceparent: version-traceid(32 hex)-parentid(16 hex)-flags. Datadog correlates on the
-- lower 64 bits of the trace id.
local function from_traceparent(tp)
  if type(tp) ~= "string" then return nil end
  local trace, span = tp:match("^%x%x%-(%x+)%-(%x+)%-%x%x$")
  if not trace or #trace ~= 32 or #span ~= 16 then return nil end
  trace, span = trace:lower(), span:lower()
  if not trace:find("[1-9a-f]") or not span:find("[1-9a-f]") then return nil end
  return hex64_to_decimal(trace:sub(17)), hex64_to_decimal(span)
end

local function move(record, from, to, key)
  local v = record[from]
  record[from] = nil
  if present(v) then to[key] = v end
end

function dd_correlate(tag, timestamp, record)
  local trace_id, span_id = datadog_id(record["trace_id"]), datadog_id(record["span_id"])
  if trace_id then
    record["trace_id"], record["span_id"] = nil, nil
  else
    trace_id, span_id = from_traceparent(record["traceparent"])
  end
  if trace_id then
    record["dd"] = { trace_id = trace_id, span_id = span_id }
  end

  if not present(record["hash"]) and HASH then record["hash"] = HASH end
  if not present(record["phase"]) and PHASE then record["phase"] = PHASE end

  local code = tonumber(record["response_code"])
  if code then
    if code == 0 or code >= 500 then
      record["status"] = "error"
    elseif code >= 400 then
      record["status"] = "warn"
    else
      record["status"] = "info"
    end
  end

  local duration = tonumber(record["duration"])
  if duration then record["duration"] = math.floor(duration * 1000000 + 0.5) end

  local http, network = {}, {}
  move(record, "response_code", http, "status_code")
  move(record, "method", http, "method")
  move(record, "path", http, "url")
  move(record, "protocol", http, "version")
  move(record, "request_id", http, "request_id")
  move(record, "user_agent", http, "useragent")
  move(record, "bytes_received", network, "bytes_read")
  move(record, "bytes_sent", network, "bytes_written")
  if next(http) then record["http"] = http end
  if next(network) then record["network"] = network end
  return 2, timestamp, record
end
