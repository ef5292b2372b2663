"""The conductor: RPC endpoints that do the long work, under per-object locks, through the
status machine of objects/states.py; plus liveness (heartbeats) and recovery (takeover,
timeouts) so that no row stays IN_PROGRESS.
"""
