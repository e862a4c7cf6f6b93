"""Layer code as students write it for cs231n's assignments: correct styles and named bugs.

Read by the tests (and later by the layer checks); each module imports only numpy.
"""
