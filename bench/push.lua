-- wrk script: Cloud Run-shaped text pushes from 500 users, unique MsgIds (MSGID_PREFIX: two digits per
-- run; run wrk with one thread, counters are per thread), CreateTime now so that the 48-hour window is open and the relay's echo replies are sent.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-wx-source"] = "other"
wrk.headers["x-wx-appid"] = "wxbench0000000001"
wrk.headers["x-wx-openid"] = "oBenchExpress"
local prefix = os.getenv("MSGID_PREFIX") or "24"
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"ToUserName":"gh_bench","FromUserName":"oUser_%d","CreateTime":%d,"MsgType":"text","Content":"hello %s-%d","MsgId":%s%015d}',
    counter % 500, os.time(), prefix, counter, prefix, counter)
  return wrk.format(nil, "/", nil, body)
end
