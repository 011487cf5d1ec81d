-- Which release actions apply to a ModelDeployment right now. Each sets the
-- modeldeploy.io/request annotation; the operator handles every value once.
local actions = {}
actions["promote"] = {["disabled"] = true}
actions["abort"] = {["disabled"] = true}
actions["retry"] = {["disabled"] = true}
actions["pause"] = {["disabled"] = true}
actions["resume"] = {["disabled"] = true}

local rollout = nil
if obj.status ~= nil then
  rollout = obj.status.rollout
end
local release = nil
local blue_green = false
if rollout ~= nil then
  if rollout.canary ~= nil then
    release = rollout.canary
  elseif rollout.abTest ~= nil then
    release = rollout.abTest
  elseif rollout.shadow ~= nil then
    release = rollout.shadow
  elseif rollout.blueGreen ~= nil then
    release = rollout.blueGreen
    blue_green = true
  end
end
if release == nil then
  return actions
end

local state = release.state
if state == "Stepping" or state == "Paused" then
  actions["promote"]["disabled"] = false
end
if state == "Starting" or state == "Stepping" or state == "Paused" or
    state == "Promoting" or state == "Switched" then
  actions["abort"]["disabled"] = false
end
if state == "Aborted" then
  actions["retry"]["disabled"] = false
end
if state == "Stepping" then
  actions["pause"]["disabled"] = false
end
if state == "Paused" and not (blue_green and release.pausedBy == "Step") then
  actions["resume"]["disabled"] = false
end
return actions
