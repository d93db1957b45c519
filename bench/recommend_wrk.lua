-- wrk script: /recommend (k 10, seen items excluded) for one random user id in 0..USERS*1.1:
-- about 9% of the ids are unknown to the model and get popularity, the rest CF.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local users = tonumber(os.getenv("USERS") or "20000")
local top = math.floor(users * 1.1)
request = function()
  local body = '{"recommender":"bench_recs","user_id":' .. math.random(0, top - 1) .. ',"k":10}'
  return wrk.format(nil, "/recommend", nil, body)
end
