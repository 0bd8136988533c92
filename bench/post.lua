-- POST the same JSON body on every request: wrk -s post.lua URL -- <json body>
-- (the licence scenarios: one presentation token verified again and again, one licence presented again and
-- again). The Authorization header comes from wrk -H.

function init(args)
   wrk.method = "POST"
   wrk.body = args[1]
   wrk.headers["Content-Type"] = "application/json"
end
