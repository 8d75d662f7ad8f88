"""Web dashboard and `smartlock up`: the whole system on one machine, run from a browser."""
