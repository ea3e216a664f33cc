"""Lambda INIT-phase housekeeping: pause Python's cyclic garbage collector while
the function module imports, then freeze what INIT built.

Each app.py calls `begin()` before its imports and `end()` after its module-level
set-up.  Importing boto3, Powertools and friends allocates hundreds of thousands
of objects, which triggers full (generation 2) collections that walk every one
of them: ~60 ms of CPU on a cold start here, for garbage that does not exist
(modules, classes and clients live as long as the environment).  `gc.freeze()`
then moves those long-lived objects out of the collector's sight, so the
collections that do run during requests are cheaper too.  See bench/results.md.
"""

import gc


def begin() -> None:
    gc.disable()


def end() -> None:
    gc.freeze()
    gc.enable()
