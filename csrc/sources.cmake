# The C core's sources, shared by the extension build and csrc/tests.
# backend_*.c are not listed: loop.c includes the one backend.h selects.
set(PHASELOOP_CORE_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/clock.c
  ${CMAKE_CURRENT_LIST_DIR}/timer.c
  ${CMAKE_CURRENT_LIST_DIR}/wakeup.c
  ${CMAKE_CURRENT_LIST_DIR}/loop.c
)

# PHASELOOP_BACKEND: auto (the platform's best), epoll, kqueue or poll.
# The environment variable of the same name overrides the cache default.
set(PHASELOOP_BACKEND "auto" CACHE STRING "I/O backend: auto, epoll, kqueue or poll")
if(DEFINED ENV{PHASELOOP_BACKEND} AND NOT "$ENV{PHASELOOP_BACKEND}" STREQUAL "")
  # The environment wins over a cached value, so one build dir can switch.
  set(PHASELOOP_BACKEND "$ENV{PHASELOOP_BACKEND}" CACHE STRING "I/O backend" FORCE)
endif()
set_property(CACHE PHASELOOP_BACKEND PROPERTY STRINGS auto epoll kqueue poll)
if(PHASELOOP_BACKEND STREQUAL "epoll")
  set(PHASELOOP_BACKEND_DEFINE PL_BACKEND_EPOLL=1)
elseif(PHASELOOP_BACKEND STREQUAL "kqueue")
  set(PHASELOOP_BACKEND_DEFINE PL_BACKEND_KQUEUE=1)
elseif(PHASELOOP_BACKEND STREQUAL "poll")
  set(PHASELOOP_BACKEND_DEFINE PL_BACKEND_POLL=1)
elseif(PHASELOOP_BACKEND STREQUAL "auto")
  set(PHASELOOP_BACKEND_DEFINE "")
else()
  message(FATAL_ERROR "PHASELOOP_BACKEND must be auto, epoll, kqueue or poll, not '${PHASELOOP_BACKEND}'")
endif()
message(STATUS "phaseloop I/O backend: ${PHASELOOP_BACKEND}")
