"""The live backend: run scenarios on this machine's kernel (:mod:`.backend`, with its
agents, observations and system settings) and check the simulator against it step by
step (:mod:`.validate`).  Standard library only: ctypes for the system calls."""
