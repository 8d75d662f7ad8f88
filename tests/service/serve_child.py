"""A process that serves a kit app until a signal, then prints that its clean-up ran (for test_serve)."""

from __future__ import annotations

import sys

from smartlock.service import Health, create_api_app, serve


def main() -> None:
    port = int(sys.argv[1])
    app = create_api_app("child", "serve() test", max_body_bytes=1024)

    @app.get("/health")
    def health() -> Health:
        return Health.of("child")

    try:
        serve(app, "127.0.0.1", port, on_stop=lambda: print("on_stop ran", flush=True))
        print("serve returned", flush=True)
    finally:
        print("cleanup ran", flush=True)


if __name__ == "__main__":
    main()
