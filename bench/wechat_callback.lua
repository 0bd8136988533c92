-- POST /api/v1/wechat/callback: WeChat's safe-mode callback, every request signed beforehand by run.py
-- (wechat_callback setup hook) with a MsgId of its own.
-- wrk -s wechat_callback.lua URL -- <requests file> <wrk threads>
-- The file has one request a line: "path-with-query TAB body". Thread k of n (numbered as in submit.lua)
-- takes lines k, k + n, k + 2n, …: no two threads send the same MsgId. A thread that comes to the end of its
-- lines starts them again; done() prints how many requests were sent again (run.py flags the run: those
-- messages were seen before and measure the de-duplication).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

function init(args)
   local file = assert(io.open(args[1], "r"))
   local total = tonumber(args[2]) or 1
   local mine = ((thread_no or 1) - 1) % total
   local headers = { ["Content-Type"] = "text/xml" }
   prepared = {}
   local n = 0
   for line in file:lines() do
      if n % total == mine then
         local tab = line:find("\t", 1, true)
         if tab then
            prepared[#prepared + 1] = wrk.format("POST", line:sub(1, tab - 1), headers, line:sub(tab + 1))
         end
      end
      n = n + 1
   end
   file:close()
   assert(#prepared > 0, "no requests for thread " .. tostring(thread_no) .. " in " .. args[1])
   available = #prepared
   sent = 0
end

function request()
   sent = sent + 1
   return prepared[(sent - 1) % available + 1]
end

function done(summary, latency, requests)
   local all, built, reused = 0, 0, 0
   for _, thread in ipairs(threads) do
      local a, s = thread:get("available") or 0, thread:get("sent") or 0
      all = all + a
      built = built + s
      if s > a then
         reused = reused + s - a
      end
   end
   io.write(string.format("Requests prepared: %d, sent: %d, reused: %d\n", all, built, reused))
end
