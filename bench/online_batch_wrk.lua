-- wrk script: 100 random users per request against a Feast-compatible /get-online-features
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local ids = {}
  for i = 1, 100 do ids[i] = math.random(0, 99999) end
  local body = '{"features":["stats:f0","stats:f1","stats:f2","stats:f3","stats:f4","stats:f5","stats:f6","stats:f7","stats:f8","stats:f9"],"entities":{"user_id":[' .. table.concat(ids, ",") .. ']}}'
  return wrk.format(nil, "/get-online-features", nil, body)
end
