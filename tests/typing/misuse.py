"""Misuses mypy must report: the package's types are really in force."""
import phaseloop

loop = phaseloop.new_event_loop()
hook = loop.add_idle(lambda: None)
hook.no_such_method()                      # error: "PhaseHook" has no attribute
name: int = phaseloop.BACKEND              # error: str is not int
loop.close()
