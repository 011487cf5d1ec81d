-- Health of a modeldeploy.io ModelDeployment, for Argo CD.
-- Healthy only when the operator has seen the current spec and the tracked version serves
-- (phase Stable); Progressing while a version comes up or a release steps; Suspended while a
-- release waits for a human; Degraded after a rollback or when the spec cannot be met.
local hs = {}

local function release_of(status)
  local rollout = status.rollout
  if rollout == nil then
    return nil
  end
  if rollout.canary ~= nil then
    return rollout.canary
  end
  if rollout.abTest ~= nil then
    return rollout.abTest
  end
  if rollout.shadow ~= nil then
    return rollout.shadow
  end
  return rollout.blueGreen
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local message = status.message or status.phase
if status.observedGeneration == nil or obj.metadata.generation == nil or
    status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " ..
    tostring(obj.metadata.generation)
  return hs
end

local phase = status.phase
if phase == "Stable" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  local release = release_of(status)
  if release ~= nil and release.pausedBy == "Analysis" then
    hs.status = "Progressing"  -- the next successful measurement moves on by itself
  else
    hs.status = "Suspended"  -- a step with an empty pause, or a pause request
  end
elseif phase == "Degraded" or phase == "Failed" or phase == "RollingBack" then
  hs.status = "Degraded"
else  -- Pending, Progressing
  hs.status = "Progressing"
end
hs.message = message
return hs
