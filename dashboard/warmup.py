"""Once per server process: import what the pages use, then freeze the imported objects.

Imported by the frame on its first run (the sign-in page), so the first page a user opens does
not pay for pandas, pyarrow and plotly. ``gc.freeze`` moves every object alive after those
imports to the permanent generation: Python's own full collections then skip the hundreds of
thousands of module objects and cost milliseconds instead of ~140 ms (docs/benchmarks.md,
"Browser: click to settled").
"""

from __future__ import annotations

import gc

import pandas  # noqa: F401  (imported for its side effect: loaded once per process)
import plotly.graph_objects  # noqa: F401
import pyarrow  # type: ignore[import-untyped]  # noqa: F401

import dashboard.present
import dashboard.state
import dashboard.widgets  # noqa: F401

gc.collect()
gc.freeze()
