# The C core's sources, shared by the extension build and csrc/tests.
# backend_*.c are not listed: loop.c includes the one backend.h selects.
set(PHASELOOP_CORE_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/clock.c
  ${CMAKE_CURRENT_LIST_DIR}/timer.c
  ${CMAKE_CURRENT_LIST_DIR}/wakeup.c
  ${CMAKE_CURRENT_LIST_DIR}/loop.c
)

# PHASELOOP_BACKEND: auto (the platform's best), epoll, kqueue or poll.
# The environment variable of the same name overrides it for one configure.
set(PHASELOOP_BACKEND "auto" CACHE STRING "I/O backend: auto, epoll, kqueue or poll")
set_property(CACHE PHASELOOP_BACKEND PROPERTY STRINGS auto epoll kqueue poll)
# The environment variable wins for this configure only: it is not cached,
# so a later build without it goes back to the -D / default choice.
set(_pl_backend "${PHASELOOP_BACKEND}")
if(DEFINED ENV{PHASELOOP_BACKEND} AND NOT "$ENV{PHASELOOP_BACKEND}" STREQUAL "")
  set(_pl_backend "$ENV{PHASELOOP_BACKEND}")
endif()
if(_pl_backend STREQUAL "epoll")
  set(PHASELOOP_BACKEND_DEFINE PL_BACKEND_EPOLL=1)
elseif(_pl_backend STREQUAL "kqueue")
  set(PHASELOOP_BACKEND_DEFINE PL_BACKEND_KQUEUE=1)
elseif(_pl_backend STREQUAL "poll")
  set(PHASELOOP_BACKEND_DEFINE PL_BACKEND_POLL=1)
elseif(_pl_backend STREQUAL "auto")
  set(PHASELOOP_BACKEND_DEFINE "")
else()
  message(FATAL_ERROR "PHASELOOP_BACKEND must be auto, epoll, kqueue or poll, not '${_pl_backend}'")
endif()
message(STATUS "phaseloop I/O backend: ${_pl_backend}")
