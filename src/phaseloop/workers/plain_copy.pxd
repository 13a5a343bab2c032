# copy_plain as port_core.pyx calls it: a C call, not a Python one.

cpdef tuple copy_plain(object message)
