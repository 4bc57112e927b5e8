"""The operations console: server-rendered pages under ``/ui/`` (``REMEDIATOR_UI=true``)."""
