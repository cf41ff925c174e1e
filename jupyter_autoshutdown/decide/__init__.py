"""Stage 2, decide: every rule about what is idle and when it goes, as pure functions.

Owns `policy.decide(snapshot, settings, now) -> Plan` and the verdicts, causes and deadlines in
it. No I/O, no clock reads, no globals: a rule is read, tested and benchmarked here alone.

Imports: `core` only.
"""
