-- Ask the operator to abort: a new value of the modeldeploy.io/request annotation (the
-- operator handles each value once and records it in status.lastRequest). The spec is
-- not touched, so the Application stays Synced.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modeldeploy.io/request"] = "abort:" .. os.date("!%Y%m%dT%H%M%SZ")
return obj
