"""The dashboard's routers, one module per area; smartlock.web.app.create_app includes them.

Handlers get the Dashboard through ``smartlock.web.dashboard.dashboard_of`` (``app.state.dashboard``).
"""
