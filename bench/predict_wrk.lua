-- wrk script: /predict for one random demo user (ids 1..USERS, default 10000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local users = tonumber(os.getenv("USERS") or "10000")
request = function()
  local body = '{"model":"churn","entities":{"user_id":[' .. math.random(1, users) .. ']}}'
  return wrk.format(nil, "/predict", nil, body)
end
