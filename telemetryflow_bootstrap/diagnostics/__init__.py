"""``telemetryflow-run --info``, ``doctor`` and ``init``: explaining and checking a setup.

Only the CLI imports these modules, and only on the ``--info``/``doctor``/``init`` paths:
running a program must not pay for the entry-point scan, the version look-ups or the network
checks done here. Everything printed goes through the same redaction as the launcher's own
messages, so a diagnostic can be pasted into an issue without leaking a secret.
"""
