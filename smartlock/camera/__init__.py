"""Camera: one capture thread fanning a JPEG stream out to every client (MJPEG over HTTP)."""
