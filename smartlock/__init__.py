"""smartlock: a face-recognition door lock (camera, recognition API, door API, engine, dashboard)."""

__version__ = "0.1.0"
