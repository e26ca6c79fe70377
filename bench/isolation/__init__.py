"""The isolation benchmark: cross-scope leakage in memory layers (``docs/isolation.md``).

``python -m bench run --only isolation``. One person, three scopes (``work`` is the caller's,
``home`` and ``client`` are the victims); canaries unique to each memory are planted in its
text, metadata, tags and (where the caller picks them) ids. For every system the caller holds
scope A's handle and tries to reach the other scopes through every public operation.

Modules: :mod:`.plants` (canaries, file scans), :mod:`.tally` (the leak counters),
:mod:`.base` (the adapter interface), :mod:`.probes` (the eight vectors), one module per
system adapter, :mod:`.report` (Markdown) and :mod:`.section` (the ``bench`` entry point).
"""
