-- POST /api/v1/applications with a fresh Idempotency-Key on every request.
-- wrk -s submit.lua URL -- <nonce> <json body>
-- The key is "<nonce>-<thread>-<counter>": the nonce is new on every bench run (a Redis shared between
-- runs never replays an earlier run's answer), the thread number keeps wrk's threads apart, and the counter
-- keeps every request of a thread apart. The Authorization header comes from wrk -H.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

function init(args)
   nonce = args[1] or "bench"
   wrk.method = "POST"
   wrk.body = args[2]
   wrk.headers["Content-Type"] = "application/json"
   counter = 0
end

function request()
   counter = counter + 1
   wrk.headers["Idempotency-Key"] = string.format("%s-%d-%d", nonce, thread_no or 0, counter)
   return wrk.format()
end
