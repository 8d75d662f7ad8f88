"""Running smartlock on a real machine: systemd units per part (`smartlock service`), `smartlock doctor`."""
