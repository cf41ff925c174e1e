"""The bottom floor: what every stage shares and nothing above it may change.

Owns the one settings model and its persistence (`settings`), the records passed between stages
(`records`: kernels, terminals, the snapshot, resource keys, UTC timestamps), the daily stop's
time arithmetic (`schedule`), time limits that cancellation wins against (`timeouts`), metrics and
events (`telemetry`), and how our clients authenticate (`auth`).

Imports: nothing of this package outside `core`.
"""
