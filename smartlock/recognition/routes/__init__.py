"""The recognition API's routers, one per area; their collaborators come from ``app.state`` (state.py)."""
