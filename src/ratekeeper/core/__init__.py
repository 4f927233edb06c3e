"""The pure core: limits, algorithms, keys and hashing, slices, instruction maths.

Nothing here does IO, reads a clock or starts a thread: time is always a parameter.
"""
