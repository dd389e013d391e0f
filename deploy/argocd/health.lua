-- Argo CD health check for metalbox's kinds (BareMetalHost, MatchboxProfile, MatchboxGroup,
-- TalosMachineConfig), read from the conditions the controller keeps (docs/health.md):
--   paused annotation, or Ready reason Detached      -> Suspended
--   status not computed for the current generation   -> Progressing
--   Stalled=True (needs a person)                     -> Degraded
--   Ready=True (in the state the spec asks for)      -> Healthy
--   anything else (Reconciling, waiting)              -> Progressing, with Ready's reason
-- Argo CD runs scripts from argocd-cm without Lua's string and os libraries: none are used here.
local hs = { status = "Progressing", message = "waiting for the metalbox controller" }
local meta = obj.metadata or {}
local annotations = meta.annotations or {}
if annotations["metalbox.io/paused"] ~= nil then
  hs.status = "Suspended"
  hs.message = "metalbox.io/paused is set: the controller does nothing for this object"
  return hs
end
local status = obj.status or {}
if status.observedGeneration == nil or status.observedGeneration ~= meta.generation then
  hs.message = "the controller has not observed generation " .. tostring(meta.generation) .. " yet"
  return hs
end
local ready = nil
local stalled = nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" and c.status == "True" then
    stalled = c
  end
end
if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = tostring(stalled.reason) .. ": " .. tostring(stalled.message)
  return hs
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.reason == "Detached" then
  hs.status = "Suspended"
end
hs.message = tostring(ready.reason) .. ": " .. tostring(ready.message)
return hs
