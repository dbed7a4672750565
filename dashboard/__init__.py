"""The Streamlit front door of Linker: the frame, sign-in, cached services and shared widgets.

Layout (see each module's docstring):

- ``dashboard/app.py``: the entry point (``streamlit run dashboard/app.py``): page config,
  sign-in, role-based navigation, the sidebar with the signed-in user and Sign out.
- ``dashboard/auth.py``: pure sign-in rules (OIDC claim → role, dev override, which page each
  role may open) and the session keys the frame reads; ``require`` guards pages.
- ``dashboard/state.py``: the cached ``Services`` per database, cached read models with short
  TTLs, cache clearing after writes, flash messages.
- ``dashboard/widgets.py``: the customer card, exchange viewer, status badges, confirmation
  dialog and error display every page uses.

Pages live in ``pages/*.py`` and call ``linker.services`` only (through ``dashboard.state``).
"""
